//! Datto monitor webhook bodies: repair of Datto's unescaped substitution, and validation
//! into an `AlertEvent` (unknown values recorded, extra keys kept), a Test call, or a named error.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::alerts::{AlertEvent, AlertEventKind, AlertFacts, AlertSource, AlertUid, FactField, Unknown};
use crate::domain::datto::is_placeholder;
use crate::domain::DomainError;

/// How a body was read.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Valid JSON as sent.
    Strict(Value),
    /// JSON only after repairing unescaped substitutions (the reason says what was fixed).
    Repaired(Value, &'static str),
}

impl Parsed {
    pub fn value(&self) -> &Value {
        match self {
            Parsed::Strict(v) | Parsed::Repaired(v, _) => v,
        }
    }
}

/// Parse a webhook body, repairing what Datto's plain-text substitution breaks: lone
/// backslashes (`DOMAIN\user`) and raw control characters inside strings.
pub fn parse_body(body: &[u8]) -> Result<Parsed, serde_json::Error> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(Parsed::Strict(v)),
        Err(strict_err) => {
            let text = String::from_utf8_lossy(body);
            let repaired = repair(&text);
            if repaired == text {
                return Err(strict_err);
            }
            serde_json::from_str::<Value>(&repaired)
                .map(|v| Parsed::Repaired(v, "escaped lone backslashes or control characters in strings"))
                .map_err(|_| strict_err)
        }
    }
}

/// Inside string literals: double a backslash that does not start a valid JSON escape, and
/// escape raw control characters. Outside strings nothing changes.
pub fn repair(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !in_string {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
            continue;
        }
        match c {
            '"' => {
                in_string = false;
                out.push(c);
            }
            '\\' => match chars.peek() {
                Some('"') | Some('\\') | Some('/') | Some('b') | Some('f') | Some('n') | Some('r') | Some('t') => {
                    out.push('\\');
                    out.push(chars.next().expect("peeked"));
                }
                Some('u') => {
                    // Valid only with four hex digits after it.
                    let rest: String = chars.clone().skip(1).take(4).collect();
                    if rest.len() == 4 && rest.chars().all(|h| h.is_ascii_hexdigit()) {
                        out.push('\\');
                    } else {
                        out.push_str("\\\\");
                    }
                }
                _ => out.push_str("\\\\"),
            },
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A webhook body after authentication: a real event, or a press of Datto's Test button.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookCall {
    Event(Box<AlertEvent>),
    Test,
}

/// The fields of deskbridge's payload (`setup::webhook_payload`). Keys match these in
/// snake_case, camelCase, PascalCase or kebab-case: case, `_` and `-` are ignored.
const KNOWN_KEYS: [&str; 10] = [
    "state",
    "alert_resolved",
    "alert_uid",
    "alert_message",
    "alert_priority",
    "device_uid",
    "device_hostname",
    "site_uid",
    "site_name",
    "additional_values",
];

/// `alertUid`, `Alert-UID`, `alert_uid` -> `alertuid`.
fn normalise_key(k: &str) -> String {
    k.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The payload's fields by canonical name, and everything else. The exact snake_case
/// spelling wins over another spelling of the same field; further spellings are ignored
/// (and logged), so a doubled field cannot smuggle a value past the first.
struct Fields<'a> {
    known: BTreeMap<&'static str, &'a Value>,
    other: Vec<(&'a str, &'a Value)>,
}

fn fields(obj: &Map<String, Value>) -> Fields<'_> {
    let mut known: BTreeMap<&'static str, (&Value, bool)> = BTreeMap::new();
    let mut other = Vec::new();
    for (k, v) in obj {
        let n = normalise_key(k);
        match KNOWN_KEYS.iter().find(|name| normalise_key(name) == n) {
            Some(name) => {
                let exact = k == name;
                match known.get(name) {
                    Some((_, true)) => tracing::warn!(key = %k, "webhook field given twice; the first spelling wins"),
                    Some((_, false)) if !exact => {
                        tracing::warn!(key = %k, "webhook field given twice; the first spelling wins")
                    }
                    _ => {
                        known.insert(name, (v, exact));
                    }
                }
            }
            None => other.push((k.as_str(), v)),
        }
    }
    Fields {
        known: known.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        other,
    }
}

/// The `state` secret carried in the body, if any (any spelling of the key).
pub fn state_of(v: &Value) -> Option<&str> {
    let obj = v.as_object()?;
    fields(obj).known.get("state").and_then(|v| v.as_str())
}

/// A text field: `Ok(Err(why))` when it is unknown (placeholder, empty, missing).
fn text_field(f: &Fields<'_>, name: &'static str) -> Result<Result<String, Unknown>, DomainError> {
    match f.known.get(name) {
        None => Ok(Err(Unknown::Missing)),
        Some(Value::Null) => Ok(Err(Unknown::Empty)),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Err(Unknown::Empty)),
        Some(Value::String(s)) if is_placeholder(s) => Ok(Err(Unknown::Placeholder(s.trim().to_string()))),
        Some(Value::String(s)) => Ok(Ok(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Ok(n.to_string())),
        Some(_) => Err(DomainError::invalid(name, "must be a string")),
    }
}

/// `true`/`false`, also as the strings admins type (`"true"`, `" False "`).
fn resolved_field(f: &Fields<'_>) -> Result<bool, DomainError> {
    match f.known.get("alert_resolved") {
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        None | Some(Value::Null) => Err(DomainError::invalid("alert_resolved", "is required (true or false)")),
        Some(_) => Err(DomainError::invalid("alert_resolved", "must be true or false")),
    }
}

/// `additional_values`: an object, or the same object written as a JSON string (what a
/// payload editor makes of a pasted object); empty or a placeholder counts as none.
fn additional_values(f: &Fields<'_>) -> Result<Map<String, Value>, DomainError> {
    let parsed;
    let m = match f.known.get("additional_values") {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() || is_placeholder(s) => return Ok(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => {
                parsed = m;
                &parsed
            }
            _ => return Err(DomainError::invalid("additional_values", "must be an object")),
        },
        Some(Value::Object(m)) => m,
        Some(_) => return Err(DomainError::invalid("additional_values", "must be an object")),
    };
    for (k, val) in m {
        if !(val.is_string() || val.is_number() || val.is_boolean()) {
            return Err(DomainError::invalid(
                format!("additional_values.{k}"),
                "must be a string, a number or a boolean",
            ));
        }
    }
    Ok(m.iter()
        .filter(|(_, val)| !val.as_str().is_some_and(is_placeholder))
        .map(|(k, val)| (k.clone(), val.clone()))
        .collect())
}

/// Validate an authenticated body into a call. Field errors name the field. Fields the
/// payload does not define are kept for the ticket's details (not refused); values that
/// are a literal `[placeholder]`, empty or absent are unknown and recorded as such.
pub fn interpret(v: &Value, at: DateTime<Utc>) -> Result<WebhookCall, DomainError> {
    let obj = v
        .as_object()
        .ok_or_else(|| DomainError::invalid("body", "must be a JSON object"))?;
    let f = fields(obj);
    let uid_raw = match f.known.get("alert_uid") {
        None | Some(Value::Null) => return Err(DomainError::invalid("alert_uid", "is required")),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(DomainError::invalid("alert_uid", "must be a string")),
    };
    if uid_raw == "[alert_uid]" {
        return Ok(WebhookCall::Test);
    }
    let uid = AlertUid::parse("alert_uid", &uid_raw)?;
    let resolved = resolved_field(&f)?;
    let additional_values = additional_values(&f)?;
    let mut facts = AlertFacts {
        additional_values,
        ..Default::default()
    };
    for field in FactField::ALL {
        match text_field(&f, field.payload_name())? {
            Ok(value) => *facts.get_mut(field) = Some(value),
            Err(why) => {
                facts.unknown.insert(field, why);
            }
        }
    }
    for (k, val) in &f.other {
        let unknown = match val {
            Value::Null => true,
            Value::String(s) => s.trim().is_empty() || is_placeholder(s),
            _ => false,
        };
        if !unknown {
            facts.other_fields.insert((*k).to_string(), (*val).clone());
        }
    }
    Ok(WebhookCall::Event(Box::new(AlertEvent {
        uid,
        kind: if resolved {
            AlertEventKind::Resolved
        } else {
            AlertEventKind::Raised
        },
        source: AlertSource::Webhook,
        at,
        facts,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_backslashes_and_control_characters_are_repaired() {
        let body = "{\"alert_message\": \"Login by ALPHASCAN\\lloyd\tfailed\", \"x\": \"ok \\n \\u00e9\"}";
        assert!(serde_json::from_str::<Value>(body).is_err());
        let p = parse_body(body.as_bytes()).unwrap();
        assert!(matches!(p, Parsed::Repaired(..)));
        assert_eq!(p.value()["alert_message"], "Login by ALPHASCAN\\lloyd\tfailed");
        assert_eq!(p.value()["x"], "ok \n é");
    }

    #[test]
    fn broken_beyond_repair_is_an_error() {
        assert!(parse_body(b"{\"alert_uid\": ").is_err());
    }

    #[test]
    fn the_test_button_and_placeholders_are_recognised() {
        let t = serde_json::json!({"state": "s", "alert_resolved": false, "alert_uid": "[alert_uid]"});
        assert_eq!(interpret(&t, Utc::now()).unwrap(), WebhookCall::Test);
        let real = serde_json::json!({"alert_resolved": false, "alert_uid": "5D1F0C6E-8A43-4B7E-9F21-3C0A7E6B2D94",
            "site_uid": "[site_uid]", "alert_message": "Disk full", "additional_values": {"n": 1, "p": "[x]"}});
        let WebhookCall::Event(e) = interpret(&real, Utc::now()).unwrap() else {
            panic!()
        };
        assert_eq!(e.uid.as_str(), "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94");
        assert_eq!(e.facts.site_uid, None);
        assert_eq!(e.facts.additional_values.len(), 1);
    }

    #[test]
    fn field_errors_name_the_field() {
        let cases = [
            (serde_json::json!({"alert_resolved": false}), "alert_uid"),
            (
                serde_json::json!({"alert_uid": 5, "alert_resolved": false}),
                "alert_uid",
            ),
            (
                serde_json::json!({"alert_uid": "nope", "alert_resolved": false}),
                "alert_uid",
            ),
            (
                serde_json::json!({"alert_uid": "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94"}),
                "alert_resolved",
            ),
            (
                serde_json::json!({"alert_uid": "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94", "alert_resolved": 1}),
                "alert_resolved",
            ),
            (
                serde_json::json!({"alert_uid": "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94", "alert_resolved": false, "alert_message": []}),
                "alert_message",
            ),
            (
                serde_json::json!({"alert_uid": "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94", "alert_resolved": false, "additional_values": {"a": {}}}),
                "additional_values.a",
            ),
        ];
        for (body, field) in cases {
            match interpret(&body, Utc::now()) {
                Err(DomainError::Validation { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    /// Admin-edited payload variants in `tests/fixtures/datto/` (see its README).
    fn variant(name: &str) -> Value {
        let text = match name {
            "camelcase" => include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/datto/webhook-variant-camelcase.json"
            )),
            "unfilled" => include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/datto/webhook-variant-unfilled.json"
            )),
            "legacy" => include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/datto/webhook-variant-legacy-keys.json"
            )),
            other => panic!("no variant {other}"),
        };
        parse_body(text.as_bytes()).unwrap().value().clone()
    }

    fn event(v: &Value) -> AlertEvent {
        match interpret(v, Utc::now()).unwrap() {
            WebhookCall::Event(e) => *e,
            WebhookCall::Test => panic!("not a test call: {v}"),
        }
    }

    #[test]
    fn placeholder_empty_and_missing_fields_are_unknown_and_say_why() {
        let e = event(&variant("unfilled"));
        let f = &e.facts;
        assert_eq!(f.priority, None);
        assert_eq!(f.site_uid, None);
        assert_eq!(f.device_hostname, None);
        assert_eq!(f.site_name, None);
        assert_eq!(
            f.unknown,
            BTreeMap::from([
                (FactField::Priority, Unknown::Placeholder("[alert_priority]".into())),
                (FactField::DeviceHostname, Unknown::Empty),
                (FactField::SiteUid, Unknown::Placeholder("[site_uid]".into())),
                (FactField::SiteName, Unknown::Missing),
            ])
        );
        // Real values are kept and not listed as unknown.
        assert_eq!(f.device_uid.as_deref(), Some("91b3d5f7-a2c4-4e6a-8b0d-c1e3f5a7b9d2"));
        assert!(!f.is_unknown(FactField::Message) && !f.is_unknown(FactField::DeviceUid));
        // The fully filled fixture has nothing unknown.
        let full = serde_json::from_str::<Value>(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/datto/webhook-raised.json"
        )))
        .unwrap();
        assert!(event(&full).facts.unknown.is_empty());
    }

    #[test]
    fn camel_case_keys_string_booleans_and_numbers_are_accepted() {
        let v = variant("camelcase");
        assert_eq!(state_of(&v), Some("s3cr3t-example"), "`State` is the state");
        let e = event(&v);
        assert_eq!(e.uid.as_str(), "c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7");
        assert_eq!(e.kind, AlertEventKind::Raised, "\"false\" is false");
        assert_eq!(e.facts.priority.as_deref(), Some("Moderate"));
        assert_eq!(e.facts.device_hostname.as_deref(), Some("BIRCH-FS01"));
        assert_eq!(e.facts.site_name.as_deref(), Some("Birch & Co Accountants"));
        assert!(e.facts.unknown.is_empty(), "{:?}", e.facts.unknown);
        // additional_values pasted as a JSON string is the same object.
        assert_eq!(e.facts.additional_values["category"], "Monitoring");
        assert_eq!(e.facts.additional_values["queue"], 2);
        // Keys our payload does not define are kept for the details, placeholders dropped;
        // the state never is.
        let other: Vec<&str> = e.facts.other_fields.keys().map(String::as_str).collect();
        assert_eq!(other, ["deviceId", "platform", "siteId"]);
        assert_eq!(e.facts.other_fields["siteId"], 418207);
        assert!(!e.facts.other_fields.keys().any(|k| k.eq_ignore_ascii_case("state")));
    }

    #[test]
    fn older_key_spellings_and_capitalised_booleans_work() {
        let e = event(&variant("legacy"));
        assert_eq!(e.kind, AlertEventKind::Resolved, "\"True\" is true");
        assert_eq!(
            e.facts.site_name.as_deref(),
            Some("Acme Ltd - Head Office"),
            "`sitename`"
        );
        assert_eq!(e.facts.other_fields["lastuser"], "ACME\\j.okafor");
        assert_eq!(e.facts.other_fields["alert_type"], "online_offline_status");
        assert_eq!(e.facts.unknown.get(&FactField::SiteUid), Some(&Unknown::Missing));
    }

    #[test]
    fn the_exact_spelling_wins_over_another_spelling_of_the_same_field() {
        let v = serde_json::json!({"alertUid": "3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28",
            "alert_uid": "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94", "alert_resolved": false,
            "AlertMessage": "first", "alertMessage": "second"});
        let e = event(&v);
        assert_eq!(e.uid.as_str(), "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94");
        assert_eq!(e.facts.message.as_deref(), Some("first"), "first other spelling wins");
        assert!(e.facts.other_fields.is_empty());
    }

    #[test]
    fn wrong_shapes_of_defined_fields_are_still_refused_by_name() {
        for (body, field) in [
            (
                serde_json::json!({"alertUid": "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94", "alertResolved": "yes"}),
                "alert_resolved",
            ),
            (
                serde_json::json!({"alert_uid": "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94", "alert_resolved": false,
                "additionalValues": "not json"}),
                "additional_values",
            ),
            (
                serde_json::json!({"alert_uid": "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94", "alert_resolved": false,
                "siteUid": {"x": 1}}),
                "site_uid",
            ),
        ] {
            match interpret(&body, Utc::now()) {
                Err(DomainError::Validation { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
