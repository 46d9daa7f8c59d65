//! Outbound events: the form-encoded POSTs the appliance sends to an HTTP recipient
//! (`support_conference_end` and friends), read totally into an event or a typed reason.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::xml::parse_unix;
use crate::domain::remote::Lsid;
use crate::domain::DomainError;

/// `event` value of the Support Session End trigger.
pub const SESSION_END: &str = "support_conference_end";

/// One outbound event. Fields besides the standard ones are kept in `other`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboundEvent {
    /// The event name, e.g. `support_conference_end`.
    pub event: String,
    /// Schema version (value unconfirmed; kept as text).
    pub version: Option<String>,
    /// When the event originated on the appliance.
    pub timestamp: DateTime<Utc>,
    /// Present on session events.
    pub lsid: Option<Lsid>,
    /// `None` when absent or empty.
    pub external_key: Option<String>,
    pub appliance_id: Option<String>,
    /// Every other field (member events: `type`, `name`, `username`, …, custom fields).
    pub other: BTreeMap<String, String>,
}

/// Why a body from a correctly authenticated appliance cannot be used. Parsing decides no
/// status: the caller records the body as `rejected` with this reason (and keeps it for
/// replay), and still answers 200, because the appliance holds back every later event
/// behind one that gets anything else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Unusable {
    /// The form field at fault (`body` when the body is not a form at all).
    pub field: &'static str,
    pub message: String,
    /// The event name, when the body had one.
    pub event: Option<String>,
    /// The session, when the body had a valid lsid.
    pub lsid: Option<Lsid>,
}

impl Unusable {
    fn new(field: &'static str, message: impl Into<String>) -> Unusable {
        Unusable {
            field,
            message: message.into(),
            event: None,
            lsid: None,
        }
    }
}

impl From<Unusable> for DomainError {
    fn from(u: Unusable) -> DomainError {
        DomainError::invalid(u.field, u.message)
    }
}

/// What an authenticated outbound-event body turned out to be: always one of the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Event(OutboundEvent),
    Unusable(Unusable),
}

/// At most this much of a refused value is quoted in a reason.
const QUOTED_MAX: usize = 40;

fn quoted(v: &str) -> String {
    let cut: String = v.chars().filter(|c| !c.is_control()).take(QUOTED_MAX).collect();
    if v.chars().count() > QUOTED_MAX {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

impl OutboundEvent {
    /// Read any body: an event, or the reason it is unusable. Total: no body panics and
    /// none is an error. `event` and `timestamp` (Unix seconds) are required; `lsid`, when
    /// present, must be 32 hex characters and is required for `support_conference_end`.
    /// A field given twice keeps its first value; bytes that are not UTF-8 are replaced.
    pub fn read(body: &[u8]) -> Received {
        match Self::read_inner(body) {
            Ok(e) => Received::Event(e),
            Err(u) => Received::Unusable(u),
        }
    }

    fn read_inner(body: &[u8]) -> Result<OutboundEvent, Unusable> {
        let head = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
        match head {
            Some(b'{') | Some(b'[') => return Err(Unusable::new("body", "is JSON; outbound events are form-encoded")),
            Some(b'<') => return Err(Unusable::new("body", "is XML; outbound events are form-encoded")),
            _ => {}
        }
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|e| Unusable::new("body", format!("not form-encoded: {e}")))?;
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in pairs {
            match fields.get(&k) {
                // Two different session ids (or ticket keys) leave no way to tell which
                // session or ticket the appliance meant; for other keys the first wins.
                Some(first) if first.trim() != v.trim() && matches!(k.as_str(), "lsid" | "external_key") => {
                    let field = if k == "lsid" { "lsid" } else { "external_key" };
                    return Err(Unusable::new(field, "appears twice with different values"));
                }
                Some(_) => {}
                None => {
                    fields.insert(k, v);
                }
            }
        }
        let mut take = |name: &str| {
            fields
                .remove(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let event = take("event");
        let raw_lsid = take("lsid");
        let lsid = raw_lsid.as_deref().and_then(|l| Lsid::parse(l).ok());
        let with_context = |mut u: Unusable| {
            u.event.clone_from(&event);
            u.lsid.clone_from(&lsid);
            u
        };
        let Some(name) = event.clone() else {
            return Err(with_context(Unusable::new("event", "is required")));
        };
        let Some(timestamp) = take("timestamp") else {
            return Err(with_context(Unusable::new("timestamp", "is required")));
        };
        let Some(timestamp) = parse_unix(&timestamp) else {
            return Err(with_context(Unusable::new(
                "timestamp",
                format!("must be Unix seconds, got {}", quoted(&timestamp)),
            )));
        };
        if let (Some(raw), None) = (&raw_lsid, &lsid) {
            let message = match Lsid::parse(raw) {
                Err(DomainError::Validation { message, .. }) => message,
                _ => "is not a session id".into(),
            };
            return Err(with_context(Unusable::new(
                "lsid",
                format!("{message}, got {}", quoted(raw)),
            )));
        }
        if name == SESSION_END && lsid.is_none() {
            return Err(with_context(Unusable::new(
                "lsid",
                "is required for support_conference_end",
            )));
        }
        Ok(OutboundEvent {
            version: take("version"),
            external_key: take("external_key"),
            appliance_id: take("appliance_id"),
            event: name,
            timestamp,
            lsid,
            other: fields,
        })
    }

    /// [`OutboundEvent::read`] as a `Result`; errors name the field.
    pub fn parse_form(body: &[u8]) -> Result<OutboundEvent, DomainError> {
        match Self::read(body) {
            Received::Event(e) => Ok(e),
            Received::Unusable(u) => Err(u.into()),
        }
    }

    /// The Support Session End trigger, the one deskbridge imports sessions on.
    pub fn is_session_end(&self) -> bool {
        self.event == SESSION_END
    }

    /// Events repeat (retries, late bursts); this key is equal for repeats of one event.
    pub fn dedupe_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.lsid.as_ref().map(Lsid::as_str).unwrap_or("-"),
            self.event,
            self.timestamp.timestamp()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn session_end_fixture_parses() {
        let e = OutboundEvent::parse_form(fixtures::OUTBOUND_SESSION_END.as_bytes()).unwrap();
        assert!(e.is_session_end());
        assert_eq!(e.version.as_deref(), Some("3"));
        assert_eq!(e.timestamp.timestamp(), 1795425312);
        assert_eq!(e.lsid.as_ref().unwrap().as_str(), fixtures::LSID_T1042);
        assert_eq!(e.external_key.as_deref(), Some("T1042"));
        assert_eq!(e.appliance_id.as_deref(), Some("ba8a3c7e54d94e1f9f0d2b6c7e8a1d34"));
        assert!(e.other.is_empty());
        assert_eq!(
            e.dedupe_key(),
            format!("{}:support_conference_end:1795425312", fixtures::LSID_T1042)
        );
    }

    #[test]
    fn other_fields_are_kept_and_empty_external_key_is_none() {
        let body = "event=support_conference_member_added&version=3&timestamp=1795423947\
                    &lsid=A3F1C9E27B5D4E08B6C2D9F4E1A7B530&external_key=&type=customer&name=Jane+Doe&event=dup";
        let e = OutboundEvent::parse_form(body.as_bytes()).unwrap();
        assert!(!e.is_session_end());
        assert_eq!(e.event, "support_conference_member_added", "first value wins");
        assert_eq!(e.external_key, None);
        assert_eq!(e.lsid.unwrap().as_str(), fixtures::LSID_T1042);
        assert_eq!(e.other.get("name").map(String::as_str), Some("Jane Doe"));
        assert_eq!(e.other.get("type").map(String::as_str), Some("customer"));
    }

    #[test]
    fn two_different_lsids_or_external_keys_are_unusable_but_a_repeated_same_one_is_not() {
        let two = b"event=support_conference_end&timestamp=1&lsid=A3F1C9E27B5D4E08B6C2D9F4E1A7B530&lsid=B3F1C9E27B5D4E08B6C2D9F4E1A7B530";
        let Received::Unusable(u) = OutboundEvent::read(two) else {
            panic!("two lsids were used")
        };
        assert_eq!(u.field, "lsid");
        let keys = b"event=support_conference_end&timestamp=1&external_key=T1&external_key=T2";
        assert!(matches!(OutboundEvent::read(keys), Received::Unusable(u) if u.field == "external_key"));
        let same = b"event=support_conference_end&timestamp=1&lsid=A3F1C9E27B5D4E08B6C2D9F4E1A7B530&lsid=A3F1C9E27B5D4E08B6C2D9F4E1A7B530";
        assert!(matches!(OutboundEvent::read(same), Received::Event(_)));
    }

    #[test]
    fn events_without_a_session_need_no_lsid() {
        let e = OutboundEvent::parse_form(b"event=some_new_trigger&timestamp=1").unwrap();
        assert_eq!(e.lsid, None);
        assert_eq!(e.version, None);
    }

    #[test]
    fn invalid_events_name_the_field() {
        let cases = [
            ("", "event", "empty body"),
            (
                "timestamp=1795425312&lsid=a3f1c9e27b5d4e08b6c2d9f4e1a7b530",
                "event",
                "no event",
            ),
            (
                "event=support_conference_end&lsid=a3f1c9e27b5d4e08b6c2d9f4e1a7b530",
                "timestamp",
                "no timestamp",
            ),
            ("event=x&timestamp=yesterday", "timestamp", "timestamp not a number"),
            (
                "event=support_conference_end&timestamp=1",
                "lsid",
                "session end without lsid",
            ),
            (
                "event=support_conference_end&timestamp=1&lsid=123",
                "lsid",
                "lsid too short",
            ),
            (
                "event=x&timestamp=1&lsid=zzzzc9e27b5d4e08b6c2d9f4e1a7b530",
                "lsid",
                "lsid not hex",
            ),
        ];
        for (body, field, why) in cases {
            match OutboundEvent::parse_form(body.as_bytes()) {
                Err(DomainError::Validation { field: f, .. }) => assert_eq!(f, field, "{why}"),
                other => panic!("{why}: {other:?}"),
            }
        }
    }

    /// Outbound-event variants in `tests/fixtures/beyondtrust/` (see its README).
    fn variant(name: &str) -> &'static [u8] {
        match name {
            "member" => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/beyondtrust/outbound-member-added.txt"
            )),
            "survey" => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/beyondtrust/outbound-exit-survey-with-custom-field.txt"
            )),
            "no-lsid" => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/beyondtrust/outbound-session-end-without-lsid.txt"
            )),
            other => panic!("no variant {other}"),
        }
    }

    #[test]
    fn real_receiver_shapes_read_as_events() {
        let Received::Event(m) = OutboundEvent::read(variant("member")) else {
            panic!("member event unusable")
        };
        assert_eq!(m.event, "support_conference_member_added");
        assert_eq!(m.other.get("username").map(String::as_str), Some("rkeller"));
        assert_eq!(m.other.get("user_id").map(String::as_str), Some("17"));
        let Received::Event(s) = OutboundEvent::read(variant("survey")) else {
            panic!("survey event unusable")
        };
        assert!(!s.is_session_end(), "a trigger we do not import is still an event");
        assert_eq!(s.other.get("ticket_ref").map(String::as_str), Some("INC0012345"));
    }

    #[test]
    fn unusable_bodies_say_why_and_keep_what_identifies_them() {
        let Received::Unusable(u) = OutboundEvent::read(variant("no-lsid")) else {
            panic!("a session end without lsid is unusable")
        };
        assert_eq!(u.field, "lsid");
        assert_eq!(u.event.as_deref(), Some(SESSION_END));
        assert_eq!(u.to_string(), "lsid: is required for support_conference_end");

        let body = format!(
            "event=support_conference_end&timestamp=soon&lsid={}",
            fixtures::LSID_T1042
        );
        let Received::Unusable(u) = OutboundEvent::read(body.as_bytes()) else {
            panic!("bad timestamp")
        };
        assert_eq!(u.to_string(), "timestamp: must be Unix seconds, got \"soon\"");
        assert_eq!(
            u.lsid.unwrap().as_str(),
            fixtures::LSID_T1042,
            "kept for the request log"
        );

        let cases: [(&[u8], &str, &str); 6] = [
            (
                br#"{"event":"support_conference_end"}"#,
                "body",
                "is JSON; outbound events are form-encoded",
            ),
            (
                b"  <event>support_conference_end</event>",
                "body",
                "is XML; outbound events are form-encoded",
            ),
            (b"\xff\xfe=%%%", "event", "is required"),
            (b"event=&timestamp=1", "event", "is required"),
            (
                b"event=support_conference_end&timestamp=1&lsid=A3F1C9E27B5D4E08B6C2D9F4E1A7B53",
                "lsid",
                "must be 32 hexadecimal characters, got \"A3F1C9E27B5D4E08B6C2D9F4E1A7B53\"",
            ),
            (
                b"event=x&timestamp=99999999999999999999999",
                "timestamp",
                "must be Unix seconds, got \"99999999999999999999999\"",
            ),
        ];
        for (body, field, message) in cases {
            match OutboundEvent::read(body) {
                Received::Unusable(u) => assert_eq!((u.field, u.message.as_str()), (field, message), "{body:?}"),
                Received::Event(e) => panic!("{body:?} read as {e:?}"),
            }
        }
    }

    #[test]
    fn a_long_refused_value_is_quoted_short() {
        let body = format!("event=x&timestamp={}", "9".repeat(5000));
        let Received::Unusable(u) = OutboundEvent::read(body.as_bytes()) else {
            panic!()
        };
        assert!(u.message.chars().count() < 100, "{}", u.message);
    }

    proptest::proptest! {
        /// Any body whatsoever reads as an event or a reason, and `parse_form` agrees.
        #[test]
        fn reading_is_total(body in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..300)) {
            let read = OutboundEvent::read(&body);
            let parsed = OutboundEvent::parse_form(&body);
            match read {
                Received::Event(e) => proptest::prop_assert_eq!(parsed, Ok(e)),
                Received::Unusable(u) => proptest::prop_assert_eq!(parsed, Err(DomainError::from(u))),
            }
        }

        /// Form-shaped bodies built from the real field names read totally too.
        #[test]
        fn form_shaped_bodies_read_totally(
            fields in proptest::collection::vec(
                (proptest::sample::select(vec!["event", "timestamp", "lsid", "version", "external_key", "x"]),
                 "[ -~]{0,40}"),
                0..8,
            )
        ) {
            let body = serde_urlencoded::to_string(&fields).unwrap();
            if let Received::Event(e) = OutboundEvent::read(body.as_bytes()) {
                proptest::prop_assert!(!e.event.is_empty());
                proptest::prop_assert!(!e.is_session_end() || e.lsid.is_some());
            }
        }
    }
}
