//! Datto alert e-mails: the `Alert{uid}` in the (decoded) subject, the sender's address,
//! and what the body tells about the alert. The uid and the sender decide; the body only adds.

use std::sync::LazyLock;

use mail_parser::MessageParser;
use regex::Regex;

use crate::domain::alerts::{truncate_chars, AlertFacts, AlertUid, BODY_MAX};
use crate::domain::datto::is_placeholder;

/// What an alert e-mail carries.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMail {
    pub subject: String,
    /// The sender's address (not the display name), lower-cased.
    pub from_address: Option<String>,
    pub uid: Option<AlertUid>,
    pub facts: AlertFacts,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MailParseError {
    #[error("the message could not be parsed as RFC 5322 mail")]
    NotAMessage,
}

/// Where `Alert{<uuid>}` sits in `subject` (byte range) and its uid: the first marker
/// whose braces hold a uid, any case, spaces allowed around and inside the braces.
fn marker(subject: &str) -> Option<(std::ops::Range<usize>, AlertUid)> {
    let lower = subject.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("alert") {
        let begin = from + pos;
        let start = begin + "alert".len();
        let rest = &subject[start..];
        let trimmed = rest.trim_start();
        if let Some(inner) = trimmed.strip_prefix('{') {
            if let Some(end) = inner.find('}') {
                let compact: String = inner[..end].chars().filter(|c| !c.is_whitespace()).collect();
                if let Ok(uid) = AlertUid::parse("subject", &compact) {
                    let close = start + (rest.len() - trimmed.len()) + 1 + end + 1;
                    return Some((begin..close, uid));
                }
            }
        }
        from = start;
    }
    None
}

/// Find `Alert{<uuid>}` (any case, spaces allowed around and inside the braces).
pub fn uid_in_subject(subject: &str) -> Option<AlertUid> {
    marker(subject).map(|(_, uid)| uid)
}

/// What the words of a subject say besides the `Alert{uid}` marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectWords {
    /// The reason and the device for Halo's documented subject, else the subject's own
    /// words; `None` when nothing but boilerplate and unfilled placeholders is left.
    pub summary: Option<String>,
    /// A leading Datto priority word (`High - …`).
    pub priority: Option<String>,
    /// True for Halo's documented `Alert on device: …, reason …` format.
    pub halo_format: bool,
}

static REPLY_PREFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^(?:(?:re|fw|fwd|aw|wg|tr|sv|vs)\s*(?:\[\d+\])?\s*:\s*)+").expect("regex"));
/// Halo's monitor subject `Alert on device: [ipaddress], reason [alert]` (marker removed),
/// with the colons optional as admins retype it.
static HALO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)^alert\s+on\s+device\s*:?\s*(?P<device>.*?)\s*,\s*reason\s*:?\s*(?P<reason>.*)$").expect("regex")
});
static PRIORITY_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?P<p>critical|high|moderate|low|information)\s*[-–—:|]\s*(?P<rest>.+)$").expect("regex")
});

static ANY_MARKER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)alert\s*\{[^}]*\}").expect("regex"));

const SEPARATORS: &[char] = &[' ', '-', '–', '—', ':', '|', ',', ';'];

/// Trimmed of separators; `None` when empty or an unfilled placeholder.
fn words(s: &str) -> Option<String> {
    let s = s.trim_matches(SEPARATORS);
    (!s.is_empty() && !is_placeholder(s)).then(|| s.to_string())
}

/// Read the words of a (decoded) subject: remove the marker, reply/forward prefixes and
/// separators; Halo's `Alert on device: D, reason R` becomes `R on D`.
pub fn subject_words(subject: &str) -> SubjectWords {
    let text = strip_marker(subject);
    let text = text.as_str();
    if let Some(c) = HALO.captures(text) {
        let device = words(&c["device"]);
        let reason = words(&c["reason"]);
        let summary = match (reason, device) {
            (Some(r), Some(d)) if r.contains(&d) => Some(r),
            (Some(r), Some(d)) => Some(format!("{r} on {d}")),
            (Some(r), None) => Some(r),
            (None, Some(d)) => Some(format!("Alert on {d}")),
            (None, None) => None,
        };
        return SubjectWords {
            summary,
            priority: None,
            halo_format: true,
        };
    }
    match PRIORITY_PREFIX.captures(text) {
        Some(c) => SubjectWords {
            summary: words(&c["rest"]),
            priority: Some(c["p"].to_string()),
            halo_format: false,
        },
        None => SubjectWords {
            summary: words(text),
            priority: None,
            halo_format: false,
        },
    }
}

/// True when `from` is the configured sender address (addresses compared case-insensitively;
/// display names ignored).
pub fn sender_matches(configured: &str, from: Option<&str>) -> bool {
    let want = bare_address(configured);
    from.map(bare_address).is_some_and(|got| !got.is_empty() && got == want)
}

fn bare_address(s: &str) -> String {
    let s = s.trim();
    let inner = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    inner.trim().to_ascii_lowercase()
}

fn labelled(text: &str, label: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim();
        let (k, v) = l.split_once(':')?;
        (k.trim().eq_ignore_ascii_case(label) && !v.trim().is_empty()).then(|| v.trim().to_string())
    })
}

/// Parse a raw message. The summary: Halo's subject format gives the reason and the
/// device; else the body's `Alert:` line (Datto's alert text); else the subject's words.
/// The body (text, else the HTML as text) goes into the details.
pub fn parse(raw: &[u8]) -> Result<AlertMail, MailParseError> {
    let msg = MessageParser::default().parse(raw).ok_or(MailParseError::NotAMessage)?;
    // mail-parser decodes RFC 2047 encoded words and unfolds folded header lines. What an
    // encoded word decodes to may hold CR LF (a header injection if the subject were ever
    // sent on) or other control characters: each becomes a space.
    let subject: String = msg
        .subject()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let from_address = msg
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .map(|a| a.to_ascii_lowercase());
    if msg.headers().is_empty() {
        return Err(MailParseError::NotAMessage);
    }
    // body_text falls back to a text rendering of the HTML part when there is no text part.
    let body = msg.body_text(0).map(|b| b.to_string()).unwrap_or_default();
    let uid = uid_in_subject(&subject);
    let words = subject_words(&subject);
    let message = if words.halo_format {
        words.summary.clone().or_else(|| labelled(&body, "Alert"))
    } else {
        labelled(&body, "Alert").or_else(|| words.summary.clone())
    };
    let body = body.trim();
    let facts = AlertFacts {
        message,
        priority: labelled(body, "Priority").or(words.priority),
        device_hostname: labelled(body, "Device"),
        site_name: labelled(body, "Site"),
        // Cut here too: the alert record keeps the facts, and a store item has a size limit.
        body: (!body.is_empty()).then(|| truncate_chars(body, BODY_MAX)),
        ..Default::default()
    };
    Ok(AlertMail {
        subject,
        from_address,
        uid,
        facts,
    })
}

/// The subject without its marker, reply prefixes and outer separators.
fn strip_marker(subject: &str) -> String {
    let without = match marker(subject) {
        Some((range, _)) => format!("{} {}", &subject[..range.start], &subject[range.end..]),
        None => subject.to_string(),
    };
    // Markers without a uid (the template's own `Alert{[alertuid]}`) are boilerplate too.
    let without = ANY_MARKER.replace_all(&without, " ");
    let collapsed = without.split_whitespace().collect::<Vec<_>>().join(" ");
    REPLY_PREFIX
        .replace(collapsed.trim_matches(SEPARATORS), "")
        .trim_matches(SEPARATORS)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uid_is_found_with_any_spacing_and_case() {
        for s in [
            "Alert{5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94} High - CPU",
            "ALERT { 5D1F0C6E-8A43-4B7E-9F21-3C0A7E6B2D94 } High",
            "Re: alert on x alert{5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94}",
        ] {
            assert_eq!(
                uid_in_subject(s).unwrap().as_str(),
                "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94",
                "{s}"
            );
        }
        assert!(uid_in_subject("Alert{not-a-uid}").is_none());
        assert!(uid_in_subject("Weekly report").is_none());
    }

    #[test]
    fn senders_compare_by_address_only() {
        assert!(sender_matches(
            "noreply@centrastage.net",
            Some("Datto RMM <NoReply@centrastage.net>")
        ));
        assert!(sender_matches(
            "Datto <noreply@centrastage.net>",
            Some("noreply@centrastage.net")
        ));
        assert!(!sender_matches(
            "noreply@centrastage.net",
            Some("noreply@centrastage.net.evil.example")
        ));
        assert!(!sender_matches("noreply@centrastage.net", None));
    }

    fn fixture(name: &str) -> &'static [u8] {
        match name {
            "halo" => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/datto/alert-email-halo-subject.eml"
            )),
            "encoded" => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/datto/alert-email-encoded-subject.eml"
            )),
            "datto" => include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/datto/alert-email.eml"
            )),
            other => panic!("no fixture {other}"),
        }
    }

    #[test]
    fn halos_documented_subject_gives_the_reason_and_the_device() {
        let cases = [
            (
                "Alert on device: 10.20.0.17, reason Process 'AdobeARMservice' isStopped - Alert{3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28}",
                Some("Process 'AdobeARMservice' isStopped on 10.20.0.17"),
            ),
            (
                "RE: alert on device: BIRCH-FS01 , reason: Volume D: has 4.5% free -- ALERT{ c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7 }",
                Some("Volume D: has 4.5% free on BIRCH-FS01"),
            ),
            (
                "Alert on device: ACME-DC01, reason CPU usage on ACME-DC01 is 93% - Alert{5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94}",
                Some("CPU usage on ACME-DC01 is 93%"),
            ),
            (
                "Alert on device: [ipaddress], reason Device went Offline - Alert{5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94}",
                Some("Device went Offline"),
            ),
            (
                "Alert on device: [ipaddress], reason [alert] - Alert{[alertuid]}",
                None,
            ),
        ];
        for (subject, want) in cases {
            let w = subject_words(subject);
            assert!(w.halo_format, "{subject}");
            assert_eq!(w.summary.as_deref(), want, "{subject}");
        }
    }

    #[test]
    fn other_subjects_keep_their_words_without_marker_prefixes_or_priority() {
        let cases = [
            (
                "Alert{5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94} High - CPU usage on ACME-DC01 has been above 90% for 15 minutes",
                Some("CPU usage on ACME-DC01 has been above 90% for 15 minutes"),
                Some("High"),
            ),
            (
                "Fwd: [Datto] Disk space low on BIRCH-FS01 | Alert{c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7}",
                Some("[Datto] Disk space low on BIRCH-FS01"),
                None,
            ),
            ("Low disk space - Alert{c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7}", Some("Low disk space"), None),
            ("Alert{c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7}", None, None),
        ];
        for (subject, summary, priority) in cases {
            let w = subject_words(subject);
            assert!(!w.halo_format, "{subject}");
            assert_eq!(
                (w.summary.as_deref(), w.priority.as_deref()),
                (summary, priority),
                "{subject}"
            );
        }
    }

    #[test]
    fn a_halo_subject_mail_makes_reason_and_device_the_summary_and_keeps_the_body() {
        let m = parse(fixture("halo")).unwrap();
        assert_eq!(
            m.subject,
            "Alert on device: 10.20.0.17, reason Process 'AdobeARMservice' isStopped - Alert{3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28}",
            "the folded subject is unfolded"
        );
        assert_eq!(m.uid.unwrap().as_str(), "3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28");
        assert_eq!(
            m.facts.message.as_deref(),
            Some("Process 'AdobeARMservice' isStopped on 10.20.0.17")
        );
        assert_eq!(m.facts.priority.as_deref(), Some("Low"));
        assert_eq!(m.facts.device_hostname.as_deref(), Some("BIRCH-PC07"));
        let body = m.facts.body.unwrap();
        assert!(body.starts_with("Site: Birch & Co Accountants"), "{body}");
        assert!(body.contains("Last user: BIRCH\\t.nguyen"), "{body}");
    }

    #[test]
    fn an_encoded_folded_forwarded_subject_is_decoded_before_matching() {
        let m = parse(fixture("encoded")).unwrap();
        assert_eq!(
            m.subject,
            "FW: Alert{c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7} Moderate – Volume D: (Daten) hat 4,5 % frei"
        );
        assert_eq!(m.uid.unwrap().as_str(), "c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7");
        assert_eq!(m.from_address.as_deref(), Some("noreply@centrastage.net"));
        assert_eq!(m.facts.message.as_deref(), Some("Volume D: (Daten) hat 4,5 % frei"));
        assert_eq!(m.facts.priority.as_deref(), Some("Moderate"), "from the subject");
        // HTML only: the details get the HTML as text.
        let body = m.facts.body.unwrap();
        assert!(body.contains("BIRCH-FS01") && body.contains("85,9 GB"), "{body}");
        assert!(!body.contains('<'), "{body}");
    }

    #[test]
    fn the_datto_fixture_mail_keeps_its_alert_line_as_summary_and_its_body() {
        let m = parse(fixture("datto")).unwrap();
        assert_eq!(
            m.facts.message.as_deref(),
            Some("CPU usage on ACME-DC01 has been above 90% for 15 minutes")
        );
        assert_eq!(m.facts.priority.as_deref(), Some("High"));
        assert_eq!(m.facts.site_name.as_deref(), Some("Acme Ltd - Head Office"));
        assert!(m
            .facts
            .body
            .unwrap()
            .contains("View the alert: https://concord.rmm.datto.com/alert/"));
    }

    #[test]
    fn rfc2047_base64_and_quoted_printable_subjects_decode() {
        for subject in [
            "=?UTF-8?B?QWxlcnR7NWQxZjBjNmUtOGE0My00YjdlLTlmMjEtM2MwYTdlNmIyZDk0fSBIaWdoIC0gQ1BV?=",
            "=?utf-8?q?Alert=7B5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94=7D_High_-_CPU?=",
            "=?ISO-8859-1?Q?Alert{5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94}_High_-_CPU?=",
        ] {
            let raw = format!("From: noreply@centrastage.net\r\nSubject: {subject}\r\n\r\nbody\r\n");
            let m = parse(raw.as_bytes()).unwrap();
            assert_eq!(
                m.uid.unwrap().as_str(),
                "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94",
                "{subject}"
            );
            assert_eq!(m.facts.message.as_deref(), Some("CPU"), "{subject}");
        }
    }

    #[test]
    fn an_encoded_subject_that_decodes_to_cr_lf_keeps_no_control_character() {
        // "Disk full\r\nBcc: evil@example.com\0 - Alert{uid}", base64-encoded.
        let raw = "From: noreply@centrastage.net\r\nSubject: =?UTF-8?B?RGlzayBmdWxsDQpCY2M6IGV2aWxAZXhhbXBsZS5jb20AIC0gQWxlcnR7NWQxZjBjNmUtOGE0My00YjdlLTlmMjEtM2MwYTdlNmIyZDk0fQ==?=\r\n\r\nbody\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.uid.unwrap().as_str(), "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94");
        assert!(!m.subject.chars().any(char::is_control), "{:?}", m.subject);
        let summary = m.facts.message.unwrap();
        assert!(!summary.chars().any(char::is_control), "{summary:?}");
        assert!(summary.contains("Bcc: evil@example.com"), "kept as words: {summary:?}");
    }

    #[test]
    fn a_huge_body_is_cut_to_what_the_ticket_details_carry() {
        let raw = format!(
            "From: noreply@centrastage.net\r\nSubject: Alert{{5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94}} x\r\n\r\n{}\r\n",
            "y".repeat(BODY_MAX * 3)
        );
        let body = parse(raw.as_bytes()).unwrap().facts.body.unwrap();
        assert_eq!(body.chars().count(), BODY_MAX);
        assert!(body.ends_with('…'));
    }
}
