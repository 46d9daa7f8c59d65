//! Datto alert e-mails: the `Alert{uid}` in the (decoded) subject, the sender's address,
//! and what the body tells about the alert. The uid and the sender decide; the body only adds.

use mail_parser::MessageParser;

use crate::domain::alerts::{AlertFacts, AlertUid};

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

/// Find `Alert{<uuid>}` (any case, spaces allowed around and inside the braces).
pub fn uid_in_subject(subject: &str) -> Option<AlertUid> {
    let lower = subject.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("alert") {
        let start = from + pos + "alert".len();
        let rest = subject[start..].trim_start();
        if let Some(inner) = rest.strip_prefix('{') {
            if let Some(end) = inner.find('}') {
                let compact: String = inner[..end].chars().filter(|c| !c.is_whitespace()).collect();
                if let Ok(uid) = AlertUid::parse("subject", &compact) {
                    return Some(uid);
                }
            }
        }
        from = start;
    }
    None
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

/// Parse a raw message.
pub fn parse(raw: &[u8]) -> Result<AlertMail, MailParseError> {
    let msg = MessageParser::default().parse(raw).ok_or(MailParseError::NotAMessage)?;
    let subject = msg.subject().unwrap_or_default().to_string();
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
    let message = labelled(&body, "Alert").or_else(|| {
        let cleaned = strip_uid(&subject);
        (!cleaned.is_empty()).then_some(cleaned)
    });
    let facts = AlertFacts {
        message,
        priority: labelled(&body, "Priority"),
        device_hostname: labelled(&body, "Device"),
        site_name: labelled(&body, "Site"),
        ..Default::default()
    };
    Ok(AlertMail {
        subject,
        from_address,
        uid,
        facts,
    })
}

/// The subject without its `Alert{...}` marker and leading separators.
fn strip_uid(subject: &str) -> String {
    let lower = subject.to_ascii_lowercase();
    if let Some(pos) = lower.find("alert") {
        if let Some(close) = subject[pos..].find('}') {
            let mut s = String::new();
            s.push_str(&subject[..pos]);
            s.push_str(&subject[pos + close + 1..]);
            return s.trim().trim_start_matches(['-', ':', ' ']).trim().to_string();
        }
    }
    subject.trim().to_string()
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
}
