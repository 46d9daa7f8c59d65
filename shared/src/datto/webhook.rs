//! Datto monitor webhook bodies: repair of Datto's unescaped placeholder substitution,
//! and validation into an `AlertEvent`, a Test-button call, or an error naming the field.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::alerts::{AlertEvent, AlertEventKind, AlertFacts, AlertSource, AlertUid};
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

/// The `state` secret carried in the body, if any.
pub fn state_of(v: &Value) -> Option<&str> {
    v.get("state").and_then(Value::as_str)
}

fn text_field(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, DomainError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() || is_placeholder(s) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(DomainError::invalid(name, "must be a string")),
    }
}

/// Validate an authenticated body into a call. Field errors name the field.
pub fn interpret(v: &Value, at: DateTime<Utc>) -> Result<WebhookCall, DomainError> {
    let obj = v
        .as_object()
        .ok_or_else(|| DomainError::invalid("body", "must be a JSON object"))?;
    let uid_raw = match obj.get("alert_uid") {
        None | Some(Value::Null) => return Err(DomainError::invalid("alert_uid", "is required")),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(DomainError::invalid("alert_uid", "must be a string")),
    };
    if uid_raw == "[alert_uid]" {
        return Ok(WebhookCall::Test);
    }
    let uid = AlertUid::parse("alert_uid", &uid_raw)?;
    let resolved = match obj.get("alert_resolved") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        None | Some(Value::Null) => return Err(DomainError::invalid("alert_resolved", "is required (true or false)")),
        Some(_) => return Err(DomainError::invalid("alert_resolved", "must be true or false")),
    };
    let additional_values = match obj.get("additional_values") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => {
            for (k, val) in m {
                if !(val.is_string() || val.is_number() || val.is_boolean()) {
                    return Err(DomainError::invalid(
                        format!("additional_values.{k}"),
                        "must be a string, a number or a boolean",
                    ));
                }
            }
            m.iter()
                .filter(|(_, val)| !val.as_str().is_some_and(is_placeholder))
                .map(|(k, val)| (k.clone(), val.clone()))
                .collect()
        }
        Some(_) => return Err(DomainError::invalid("additional_values", "must be an object")),
    };
    let facts = AlertFacts {
        message: text_field(obj, "alert_message")?,
        priority: text_field(obj, "alert_priority")?,
        device_uid: text_field(obj, "device_uid")?,
        device_hostname: text_field(obj, "device_hostname")?,
        site_uid: text_field(obj, "site_uid")?,
        site_name: text_field(obj, "site_name")?,
        diagnostics: None,
        context: None,
        additional_values,
    };
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
}
