//! Reporting API answers: the `SupportSession` report (participants, event log,
//! completeness, conversion into `domain::remote`) and the `SupportSessionListing`.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::xml::{self, parse_flag, Element};
use super::Error;
use crate::domain::remote::{
    ActorKind, Lsid, RepNames, SessionActor, SessionCustomer, SessionEvent, SessionFacts, SessionRep,
};

/// `generate_report=SupportSession` for one session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SupportSessionReport {
    pub lsid: String,
    pub session_type: Option<String>,
    pub lseq: Option<u64>,
    /// `None` when the element is absent or empty.
    pub external_key: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    /// Absent while the session is still being written.
    pub end_time: Option<DateTime<Utc>>,
    /// Seconds, from `HH:MM:SS`.
    pub duration_secs: Option<u64>,
    pub public_site: Option<String>,
    /// `code_name` → value.
    pub custom_attributes: Vec<(String, String)>,
    pub chat_view_url: Option<String>,
    /// Present only for sessions that ended properly.
    pub chat_download_url: Option<String>,
    pub file_transfer_count: Option<u32>,
    pub primary_customer: Option<Actor>,
    pub primary_rep: Option<Actor>,
    /// `id` attribute of `primary_rep`.
    pub primary_rep_id: Option<String>,
    pub customers: Vec<Customer>,
    pub reps: Vec<Representative>,
    pub events: Vec<ReportEvent>,
}

/// How complete a `SupportSession` report is (the vendor defines no rule; these are the
/// signals the notes recommend, vendor/beyondtrust.md §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Completeness {
    /// No `end_time` yet: still being written (or still running). Retry soon.
    InProgress,
    /// Ended, no chat URLs: an abnormal end never gets them, so after a short wait import
    /// what there is and mark the transcript possibly partial.
    PossiblyPartial,
    /// Ended, with the chat download URL.
    Complete,
}

/// A participant as referenced from events and the `primary_*` elements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `customer`, `representative`, `system`.
    pub kind: Option<String>,
    pub gsnumber: Option<u32>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Customer {
    pub gsnumber: Option<u32>,
    pub username: Option<String>,
    /// `ip:port`; `None` for the literal `Unknown`.
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub info: CustomerInfo,
    pub primary: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CustomerInfo {
    pub name: Option<String>,
    pub company: Option<String>,
    pub company_code: Option<String>,
    pub issue: Option<String>,
    pub details: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Representative {
    /// Connection number in this session (not a user id).
    pub gsnumber: Option<u32>,
    /// The representative's user id.
    pub id: Option<String>,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub public_display_name: Option<String>,
    pub private_display_name: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub hostname: Option<String>,
    pub os: Option<String>,
    /// `session_owner`, or `primary_rep` on older appliances.
    pub session_owner: bool,
    pub invited: bool,
    pub seconds_involved: Option<u64>,
}

impl Representative {
    pub fn names(&self) -> RepNames {
        RepNames {
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            public_display_name: self.public_display_name.clone(),
            private_display_name: self.private_display_name.clone(),
        }
    }
}

/// One `session_details/event`. Unknown event types are kept as they come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportEvent {
    pub timestamp: DateTime<Utc>,
    pub event_type: String,
    pub performed_by: Option<Actor>,
    pub destination: Option<Actor>,
    /// `encoded_body` base64-decoded when present, else `body`.
    pub body: Option<String>,
    pub filename: Option<String>,
    pub filesize: Option<u64>,
    /// `data/value name= value=` pairs.
    pub data: Vec<(String, String)>,
}

impl SupportSessionReport {
    /// Parse a `SupportSession` answer and return the session with this lsid (the first
    /// session when `lsid` is `None`). No session at all is `Error::Api`, like the
    /// appliance's own "nothing matched" answer.
    pub fn from_xml(body: &str, lsid: Option<&str>) -> Result<SupportSessionReport, Error> {
        let root = xml::expect_root(body, "session_list")?;
        let mut sessions = root.children("session");
        let session = match lsid {
            Some(want) => sessions.find(|s| {
                s.attr("lsid")
                    .is_some_and(|l| l.trim().eq_ignore_ascii_case(want.trim()))
            }),
            None => sessions.next(),
        }
        .ok_or_else(|| Error::Api(format!("no session {} in the report", lsid.unwrap_or(""))))?;
        parse_session(session)
    }

    /// Complete = the session has ended and its chat can be downloaded. The vendor does
    /// not define completeness; right after the end event these may still be missing.
    pub fn is_complete(&self) -> bool {
        self.completeness() == Completeness::Complete
    }

    /// Complete enough to import: the session has ended (`end_time` is present).
    pub fn is_importable(&self) -> bool {
        self.end_time.is_some()
    }

    /// Ended, but without the chat URLs the appliance only gives for sessions that ended
    /// properly: importable, yet the transcript may lack its last lines.
    pub fn possibly_partial(&self) -> bool {
        self.completeness() == Completeness::PossiblyPartial
    }

    /// Where the report stands.
    pub fn completeness(&self) -> Completeness {
        match (self.end_time, &self.chat_download_url) {
            (None, _) => Completeness::InProgress,
            (Some(_), None) => Completeness::PossiblyPartial,
            (Some(_), Some(_)) => Completeness::Complete,
        }
    }

    /// The session in domain terms.
    pub fn to_facts(&self) -> Result<SessionFacts, Error> {
        let lsid = Lsid::parse(&self.lsid).map_err(|e| Error::Malformed(format!("report session id: {e}")))?;
        let primary_rep_gs = self.primary_rep.as_ref().and_then(|a| a.gsnumber);
        Ok(SessionFacts {
            lsid,
            external_key: self.external_key.clone(),
            started_at: self.start_time,
            ended_at: self.end_time,
            duration_secs: self.duration_secs,
            primary_customer: self.primary_customer.as_ref().and_then(|a| a.name.clone()),
            customers: self
                .customers
                .iter()
                .map(|c| SessionCustomer {
                    gsnumber: c.gsnumber,
                    name: c.info.name.clone(),
                    username: c.username.clone(),
                })
                .collect(),
            reps: self
                .reps
                .iter()
                .map(|r| SessionRep {
                    gsnumber: r.gsnumber,
                    id: r.id.clone(),
                    names: r.names(),
                    session_owner: r.session_owner,
                    primary: (r.gsnumber.is_some() && r.gsnumber == primary_rep_gs)
                        || (r.id.is_some() && r.id == self.primary_rep_id),
                })
                .collect(),
            events: self
                .events
                .iter()
                .map(|e| SessionEvent {
                    at: e.timestamp,
                    event_type: e.event_type.clone(),
                    performed_by: e.performed_by.as_ref().map(|a| SessionActor {
                        kind: ActorKind::parse(a.kind.as_deref().unwrap_or("")),
                        gsnumber: a.gsnumber,
                        name: a.name.clone(),
                    }),
                    text: e.body.clone(),
                })
                .collect(),
        })
    }
}

/// The time window of a `SupportSessionListing` (vendor notes §5): `duration` counts
/// seconds with a Unix time; 0 means "up to now".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingWindow {
    /// Sessions that began in the window, those still in progress included.
    Began { from: DateTime<Utc>, seconds: u64 },
    /// Only closed sessions that ended in the window (the lost-end-event sweep).
    Ended { from: DateTime<Utc>, seconds: u64 },
}

impl ListingWindow {
    /// The reporting API's parameters for this window.
    pub fn form(&self) -> Vec<(&'static str, String)> {
        let (name, from, seconds) = match self {
            ListingWindow::Began { from, seconds } => ("start_time", from, seconds),
            ListingWindow::Ended { from, seconds } => ("end_time", from, seconds),
        };
        vec![(name, from.timestamp().to_string()), ("duration", seconds.to_string())]
    }
}

/// One `session_summary` of a `SupportSessionListing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSummary {
    pub lsid: Lsid,
    pub has_recording: bool,
    /// Child element or attribute (the markup is unconfirmed); `None` when empty.
    pub external_key: Option<String>,
}

/// Parse a `SupportSessionListing` answer. No matching session is an empty list, whether
/// the appliance sends an empty `session_summary_list` (as documented for the PRA twin) or
/// its "nothing matched" `<error>`; any other `<error>` is `Error::Api`. Entries without a
/// valid lsid are skipped and logged.
pub fn session_listing_from_xml(body: &str) -> Result<Vec<SessionSummary>, Error> {
    let root = match xml::expect_root(body, "session_summary_list") {
        Ok(root) => root,
        Err(Error::Api(message)) if message.to_ascii_lowercase().contains("match") => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in root.children("session_summary") {
        let raw = entry.attr_text("lsid").unwrap_or_default();
        let Ok(lsid) = Lsid::parse(&raw) else {
            tracing::warn!(lsid = %raw, "skipping a session listing entry without a valid lsid");
            continue;
        };
        out.push(SessionSummary {
            lsid,
            has_recording: entry.attr("has_recording").and_then(parse_flag).unwrap_or(false),
            external_key: entry
                .child_text("external_key")
                .or_else(|| entry.attr_text("external_key")),
        });
    }
    Ok(out)
}

fn parse_session(s: &Element) -> Result<SupportSessionReport, Error> {
    let lsid = s
        .attr_text("lsid")
        .ok_or_else(|| Error::Malformed("session without lsid".into()))?;
    let mut events = Vec::new();
    for e in s.list("session_details", "event") {
        events.push(parse_event(e)?);
    }
    Ok(SupportSessionReport {
        lsid,
        session_type: s.child_text("session_type"),
        lseq: s.child_text("lseq").and_then(|v| v.parse().ok()),
        external_key: s.child_text("external_key"),
        start_time: s.child("start_time").and_then(Element::time),
        end_time: s.child("end_time").and_then(Element::time),
        duration_secs: s.child_text("duration").as_deref().and_then(parse_duration),
        public_site: s.child_text("public_site"),
        custom_attributes: s
            .list("custom_attributes", "custom_attribute")
            .into_iter()
            .filter_map(|a| Some((a.attr_text("code_name")?, a.value().unwrap_or_default())))
            .collect(),
        chat_view_url: s.child_text("session_chat_view_url"),
        chat_download_url: s.child_text("session_chat_download_url"),
        file_transfer_count: s.child_text("file_transfer_count").and_then(|v| v.parse().ok()),
        primary_customer: s.child("primary_customer").map(actor),
        primary_rep: s.child("primary_rep").map(actor),
        primary_rep_id: s.child("primary_rep").and_then(|p| p.attr_text("id")),
        customers: s
            .list("customer_list", "customer")
            .into_iter()
            .map(|c| {
                let info = c.child("info");
                let info_text = |n: &str| info.and_then(|i| i.child_text(n));
                Customer {
                    gsnumber: gsnumber(c),
                    username: c.child_text("username"),
                    public_ip: known(c.child_text("public_ip")),
                    private_ip: known(c.child_text("private_ip")),
                    hostname: known(c.child_text("hostname")),
                    os: known(c.child_text("os")),
                    info: CustomerInfo {
                        name: info_text("name"),
                        company: info_text("company"),
                        company_code: info_text("company_code"),
                        issue: info_text("issue"),
                        details: info_text("details"),
                    },
                    primary: flag(c, "primary_cust"),
                }
            })
            .collect(),
        reps: s
            .list("rep_list", "representative")
            .into_iter()
            .map(|r| Representative {
                gsnumber: gsnumber(r),
                id: r.attr_text("id"),
                username: r.child_text("username"),
                display_name: r.child_text("display_name"),
                public_display_name: r.child_text("public_display_name"),
                private_display_name: r.child_text("private_display_name"),
                public_ip: known(r.child_text("public_ip")),
                private_ip: known(r.child_text("private_ip")),
                hostname: known(r.child_text("hostname")),
                os: known(r.child_text("os")),
                session_owner: flag(r, "session_owner") || flag(r, "primary_rep"),
                invited: flag(r, "invited"),
                seconds_involved: r.child_text("seconds_involved").and_then(|v| v.parse().ok()),
            })
            .collect(),
        events,
    })
}

fn parse_event(e: &Element) -> Result<ReportEvent, Error> {
    let timestamp = e
        .time()
        .ok_or_else(|| Error::Malformed("session event without a timestamp".into()))?;
    let body = match e.child("encoded_body").and_then(|b| b.value()) {
        Some(encoded) => Some(decode_body(&encoded)?),
        None => e.child("body").and_then(Element::value),
    };
    Ok(ReportEvent {
        timestamp,
        event_type: e.attr_text("event_type").unwrap_or_default(),
        performed_by: e.child("performed_by").map(actor),
        destination: e.child("destination").map(actor),
        body,
        filename: e.child_text("filename"),
        filesize: e.child_text("filesize").and_then(|v| v.parse().ok()),
        data: e
            .list("data", "value")
            .into_iter()
            .filter_map(|v| Some((v.attr_text("name")?, v.attr("value").unwrap_or("").to_string())))
            .collect(),
    })
}

/// RFC 2045 base64 (line breaks allowed) of UTF-8 text.
fn decode_body(encoded: &str) -> Result<String, Error> {
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| Error::Malformed(format!("encoded_body is not base64: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn actor(e: &Element) -> Actor {
    Actor {
        kind: e.attr_text("type"),
        gsnumber: gsnumber(e),
        name: e.value(),
    }
}

fn gsnumber(e: &Element) -> Option<u32> {
    e.attr("gsnumber").and_then(|g| g.trim().parse().ok())
}

fn flag(e: &Element, name: &str) -> bool {
    e.child_text(name).as_deref().and_then(parse_flag).unwrap_or(false)
}

/// Address fields use the literal `Unknown` for missing values.
fn known(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.eq_ignore_ascii_case("unknown"))
}

/// `HH:MM:SS` (hours may exceed 24) or `MM:SS` to seconds.
fn parse_duration(s: &str) -> Option<u64> {
    let parts: Vec<u64> = s.trim().split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    match parts[..] {
        [h, m, s] if m < 60 && s < 60 => Some(h * 3600 + m * 60 + s),
        [m, s] if s < 60 => Some(m * 60 + s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use crate::domain::desk::Agent;
    use crate::domain::remote::{self, find_technician, ExternalKey};

    fn report(xml: &str, lsid: &str) -> SupportSessionReport {
        SupportSessionReport::from_xml(xml, Some(lsid)).unwrap()
    }

    #[test]
    fn complete_report_fixture_parses_session_participants_and_events() {
        let r = report(fixtures::REPORT, fixtures::LSID_T1042);
        assert_eq!(r.lsid, fixtures::LSID_T1042);
        assert_eq!(r.session_type.as_deref(), Some("support"));
        assert_eq!(r.lseq, Some(5813));
        assert_eq!(r.external_key.as_deref(), Some("T1042"));
        assert_eq!(r.start_time.unwrap().timestamp(), 1795423932);
        assert_eq!(r.end_time.unwrap().timestamp(), 1795425312);
        assert_eq!(r.duration_secs, Some(23 * 60));
        assert_eq!(r.public_site.as_deref(), Some("Default"));
        assert!(r.chat_download_url.as_deref().unwrap().ends_with("dl_action=chat"));
        assert!(r.chat_view_url.as_deref().unwrap().ends_with("&view=1"));
        assert_eq!(r.primary_customer.as_ref().unwrap().name.as_deref(), Some("Jane Doe"));
        assert_eq!(r.primary_rep_id.as_deref(), Some("12"));

        assert_eq!(r.customers.len(), 1);
        let jane = &r.customers[0];
        assert_eq!(jane.gsnumber, Some(3));
        assert_eq!(jane.public_ip.as_deref(), Some("203.0.113.45:51234"));
        assert_eq!(jane.info.company_code.as_deref(), Some("CON-001"));

        let ids: Vec<_> = r.reps.iter().map(|p| (p.gsnumber, p.id.as_deref())).collect();
        assert_eq!(ids, [(Some(2), Some("12")), (Some(4), Some("17"))]);
        assert!(r.reps[0].session_owner && !r.reps[0].invited);
        assert!(!r.reps[1].session_owner && r.reps[1].invited);
        assert_eq!(r.reps[1].username.as_deref(), Some("rkeller"));
        assert_eq!(r.reps[0].seconds_involved, Some(1319));

        assert_eq!(r.events.len(), 17);
        assert_eq!(r.events[0].event_type, "Session Start");
        assert_eq!(
            r.events[1].data,
            [("owner".to_string(), "Pre-start Conference".to_string())]
        );
        let upload = r.events.iter().find(|e| e.event_type == "File Upload").unwrap();
        assert_eq!(upload.filesize, Some(184320));
        assert_eq!(upload.destination.as_ref().unwrap().gsnumber, Some(3));
        assert_eq!(r.events.last().unwrap().event_type, "Session End");
        assert!(r.is_complete());
    }

    #[test]
    fn encoded_body_is_decoded_and_plain_bodies_are_unescaped() {
        let r = report(fixtures::REPORT, fixtures::LSID_T1042);
        let chats: Vec<&ReportEvent> = r.events.iter().filter(|e| e.event_type == "Chat Message").collect();
        assert_eq!(chats.len(), 7);
        assert_eq!(
            chats[2].body.as_deref(),
            Some("Here is what the dialog says:\u{0B}Error 0x80048823 - sign-in failed")
        );
        assert!(chats[4].body.as_deref().unwrap().contains("desktop & will run"));
        let broken = r#"<session_list><session lsid="a3f1c9e27b5d4e08b6c2d9f4e1a7b530"><session_details>
            <event timestamp="1" event_type="Chat Message"><encoded_body>!!!</encoded_body></event>
            </session_details></session></session_list>"#;
        assert!(matches!(
            SupportSessionReport::from_xml(broken, None),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn incomplete_report_fixture_is_not_complete() {
        let r = report(fixtures::REPORT_INCOMPLETE, fixtures::LSID_T1042);
        assert!(r.end_time.is_none());
        assert!(r.chat_download_url.is_none());
        assert!(!r.is_complete());
        let mut ended_without_chat = report(fixtures::REPORT, fixtures::LSID_T1042);
        ended_without_chat.chat_download_url = None;
        assert!(!ended_without_chat.is_complete());
    }

    #[test]
    fn unlinked_report_has_no_external_key_and_unknown_addresses_are_none() {
        let r = report(fixtures::REPORT_UNLINKED, fixtures::LSID_UNLINKED);
        assert_eq!(r.external_key, None);
        let sam = &r.reps[0];
        assert_eq!(sam.private_ip, None);
        assert_eq!(sam.os, None);
        assert_eq!(sam.hostname.as_deref(), Some("SD-WS-034"));
        assert_eq!(r.customers[0].info.company_code, None);
        assert!(r.is_complete());
    }

    #[test]
    fn single_participants_and_empty_lists_parse() {
        let xml = r#"<session_list xmlns="http://www.bomgar.com/namespaces/API/reporting">
            <session lsid="ABCDEF0123456789ABCDEF0123456789">
            <external_key/><rep_list/><customer_list/><session_details/>
            </session></session_list>"#;
        let r = report(xml, "abcdef0123456789abcdef0123456789");
        assert_eq!(r.external_key, None);
        assert!(r.customers.is_empty() && r.reps.is_empty() && r.events.is_empty());
        let xml = r#"<session_list><session lsid="abcdef0123456789abcdef0123456789">
            <rep_list><representative gsnumber="1" id="5"><primary_rep>1</primary_rep></representative></rep_list>
            </session></session_list>"#;
        let r = report(xml, "abcdef0123456789abcdef0123456789");
        assert!(r.reps[0].session_owner, "older appliances say primary_rep");
    }

    #[test]
    fn missing_session_and_error_documents_are_api_errors() {
        let none = SupportSessionReport::from_xml("<session_list/>", Some(fixtures::LSID_T1042));
        assert!(matches!(none, Err(Error::Api(_))));
        let other = SupportSessionReport::from_xml(fixtures::REPORT, Some(fixtures::LSID_UNLINKED));
        assert!(matches!(other, Err(Error::Api(_))));
        let err = SupportSessionReport::from_xml("<error>No sessions matched your query</error>", None);
        assert_eq!(err, Err(Error::Api("No sessions matched your query".into())));
    }

    #[test]
    fn durations_parse_hours_beyond_a_day() {
        for (text, secs) in [
            ("00:23:00", Some(1380)),
            ("26:00:01", Some(93601)),
            ("05:07", Some(307)),
            ("1:61:00", None),
            ("soon", None),
        ] {
            assert_eq!(parse_duration(text), secs, "{text}");
        }
    }

    #[test]
    fn report_converts_to_facts_and_a_transcript() {
        let facts = report(fixtures::REPORT, fixtures::LSID_T1042).to_facts().unwrap();
        assert_eq!(facts.external_key(), Some(ExternalKey::Ticket(1042)));
        assert_eq!(facts.customer_name(), Some("Jane Doe"));
        assert!(facts.reps[0].primary && facts.reps[0].session_owner);
        let lines = remote::transcript(&facts);
        let authors: Vec<&str> = lines.iter().map(|l| l.from.as_str()).collect();
        assert_eq!(
            authors,
            [
                "Alice Martin",
                "Jane Doe",
                "Jane Doe",
                "Alice Martin",
                "Bob",
                "Alice Martin",
                "Jane Doe"
            ]
        );
        assert_eq!(
            lines[2].text,
            "Here is what the dialog says:\nError 0x80048823 - sign-in failed"
        );
        assert_eq!(lines[6].text, "No, that's all. Thank you both!");
        let note = remote::render_note(&facts, &lines);
        assert!(
            note.contains("Duration: 00:23:00\nRepresentatives: Alice Martin, Bob"),
            "{note}"
        );
        assert!(
            note.contains("[08:54:17] Alice Martin: Hi Jane, this is Alice"),
            "{note}"
        );
        assert!(
            !note.contains("Cleared cached Office credentials"),
            "session notes are not chat"
        );
    }

    #[test]
    fn unlinked_report_matches_sam_by_private_name() {
        let facts = report(fixtures::REPORT_UNLINKED, fixtures::LSID_UNLINKED)
            .to_facts()
            .unwrap();
        assert_eq!(facts.external_key(), None);
        let agents = [Agent {
            id: 21,
            name: "Samuel".into(),
            email: "s@example.com".into(),
            bt_enabled: true,
            bt_name: Some("samuel ortiz (tier 1)".into()),
            role: Default::default(),
            disabled: false,
        }];
        assert_eq!(find_technician(&agents, &facts).map(|a| a.id), Some(21));
        let lines = remote::transcript(&facts);
        assert_eq!(lines.len(), 4);
        assert_eq!(
            (lines[1].from.as_str(), lines[1].text.as_str()),
            ("Mark Lee", "It says my certificate expired.")
        );
    }

    #[test]
    fn an_abnormal_end_is_importable_but_possibly_partial() {
        let r = report(fixtures::REPORT_ABNORMAL_END, fixtures::LSID_T1042);
        assert!(r.end_time.is_some() && r.chat_download_url.is_none() && r.chat_view_url.is_none());
        assert_eq!(r.completeness(), Completeness::PossiblyPartial);
        assert!(r.is_importable() && r.possibly_partial() && !r.is_complete());
        let lines = remote::transcript(&r.to_facts().unwrap());
        assert_eq!(lines.len(), 6, "what the report holds is imported");

        let running = report(fixtures::REPORT_INCOMPLETE, fixtures::LSID_T1042);
        assert_eq!(running.completeness(), Completeness::InProgress);
        assert!(!running.is_importable() && !running.possibly_partial());
        let done = report(fixtures::REPORT, fixtures::LSID_T1042);
        assert_eq!(done.completeness(), Completeness::Complete);
        assert!(done.is_importable() && !done.possibly_partial());
    }

    #[test]
    fn the_session_listing_reads_lsids_recordings_and_external_keys_in_either_markup() {
        let list = session_listing_from_xml(fixtures::SESSION_LISTING).unwrap();
        let got: Vec<(&str, bool, Option<&str>)> = list
            .iter()
            .map(|s| (s.lsid.as_str(), s.has_recording, s.external_key.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (fixtures::LSID_T1042, false, Some("T1042")),
                (fixtures::LSID_UNLINKED, true, None),
                (fixtures::LSID_CHAT, false, Some("C77")),
            ]
        );
    }

    #[test]
    fn an_empty_listing_is_no_sessions_but_other_errors_are_errors() {
        for empty in [
            "<session_summary_list/>",
            r#"<session_summary_list xmlns="http://www.beyondtrust.com/namespaces/API/reporting"></session_summary_list>"#,
            "<error>No sessions matched your query.</error>",
        ] {
            assert_eq!(session_listing_from_xml(empty), Ok(Vec::new()), "{empty}");
        }
        assert_eq!(
            session_listing_from_xml("<error>Access denied: reporting not permitted</error>"),
            Err(Error::Api("Access denied: reporting not permitted".into()))
        );
        assert!(matches!(
            session_listing_from_xml("<session_list/>"),
            Err(Error::Malformed(_))
        ));
        let odd = r#"<session_summary_list><session_summary lsid="nope"/><session_summary has_recording="1"/>
            <session_summary lsid="a3f1c9e27b5d4e08b6c2d9f4e1a7b530"/></session_summary_list>"#;
        let list = session_listing_from_xml(odd).unwrap();
        assert_eq!(list.len(), 1, "entries without a valid lsid are skipped");
        assert!(!list[0].has_recording && list[0].external_key.is_none());
    }

    #[test]
    fn listing_windows_use_unix_times_and_seconds() {
        let from = DateTime::from_timestamp(1795424400, 0).unwrap();
        assert_eq!(
            ListingWindow::Ended { from, seconds: 0 }.form(),
            [("end_time", "1795424400".to_string()), ("duration", "0".to_string())]
        );
        assert_eq!(
            ListingWindow::Began { from, seconds: 900 }.form(),
            [
                ("start_time", "1795424400".to_string()),
                ("duration", "900".to_string())
            ]
        );
    }
}
