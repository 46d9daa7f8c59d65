//! Outbound events: the form-encoded POSTs the appliance sends to an HTTP recipient
//! (`support_conference_end` and friends), parsed and validated.

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

impl OutboundEvent {
    /// Parse a form-encoded body. `event` and `timestamp` are required; `lsid`, when
    /// present, must be 32 hex characters and is required for `support_conference_end`.
    /// A field given twice keeps its first value. Errors name the field.
    pub fn parse_form(body: &[u8]) -> Result<OutboundEvent, DomainError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| DomainError::invalid("body", format!("not form-encoded: {e}")))?;
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in pairs {
            fields.entry(k).or_insert(v);
        }
        let mut take = |name: &str| {
            fields
                .remove(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let event = take("event").ok_or_else(|| DomainError::invalid("event", "is required"))?;
        let timestamp = take("timestamp").ok_or_else(|| DomainError::invalid("timestamp", "is required"))?;
        let timestamp =
            parse_unix(&timestamp).ok_or_else(|| DomainError::invalid("timestamp", "must be Unix seconds"))?;
        let lsid = take("lsid").map(|l| Lsid::parse(&l)).transpose()?;
        if event == SESSION_END && lsid.is_none() {
            return Err(DomainError::invalid("lsid", "is required for support_conference_end"));
        }
        Ok(OutboundEvent {
            version: take("version"),
            external_key: take("external_key"),
            appliance_id: take("appliance_id"),
            event,
            timestamp,
            lsid,
            other: fields,
        })
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
}
