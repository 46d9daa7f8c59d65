//! What the setup helper shows an admin: the Alert Raised and Alert Resolved payloads to
//! paste into Datto (real placeholders, current `state`) and the alert e-mail subject line.

use serde_json::{json, Value};

/// The Alert Raised (`resolved = false`) or Alert Resolved payload for `state`.
pub fn webhook_payload(state: &str, resolved: bool) -> Value {
    json!({
        "state": state,
        "alert_resolved": resolved,
        "alert_uid": "[alert_uid]",
        "alert_message": "[alert_message]",
        "alert_priority": "[alert_priority]",
        "device_uid": "[device_uid]",
        "device_hostname": "[device_hostname]",
        "site_uid": "[site_uid]",
        "site_name": "[site_name]",
        "additional_values": {}
    })
}

/// An example of `additional_values`: literal ticket custom fields the admin may add.
pub fn additional_values_example() -> Value {
    json!({"category": "Monitoring", "source": "Datto RMM"})
}

/// The content type to choose in Datto's webhook settings.
pub const CONTENT_TYPE: &str = "application/json";

/// The subject to paste into a monitor's e-mail response: Halo's documented format with
/// Datto's e-mail placeholders (`[ipaddress]`, `[alert]`, `[alertuid]` — the spellings
/// without underscores). deskbridge finds the alert by the `Alert{…}` part and makes the
/// reason and the device the ticket's summary.
pub const EMAIL_SUBJECT: &str = "Alert on device: [ipaddress], reason [alert] - Alert{[alertuid]}";

/// The setup text for alert e-mails: where to send them and the subject line to use.
/// `recipient` is the address deskbridge's mail intake receives, when known.
pub fn email_instructions(recipient: Option<&str>) -> String {
    let to = recipient
        .map(|r| format!("to {r}"))
        .unwrap_or_else(|| "to the address deskbridge's mail intake receives".into());
    format!(
        "In Datto RMM, give each monitor (or its policy) an e-mail response {to} with this subject:\n\n    \
         {EMAIL_SUBJECT}\n\n\
         The Alert{{[alertuid]}} part is required: it tells deskbridge which alert the mail is about. \
         You may change the words before it; they become the ticket's summary. \
         Datto fills the placeholders when it sends the mail. Then set the From Address in the \
         Datto settings here to the address Datto's alert mails come from."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datto::mail::{subject_words, uid_in_subject};

    #[test]
    fn the_subject_line_is_halos_format_and_reads_back_once_datto_fills_it() {
        let text = email_instructions(Some("datto-alerts@alerts.example.com"));
        assert!(text.contains("to datto-alerts@alerts.example.com"), "{text}");
        assert!(text.contains(EMAIL_SUBJECT), "{text}");
        assert!(email_instructions(None).contains("mail intake"));
        // What Datto sends for it is read back as reason and device.
        let filled = EMAIL_SUBJECT
            .replace("[ipaddress]", "10.10.0.5")
            .replace("[alert]", "Device went Offline")
            .replace("[alertuid]", "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94");
        assert_eq!(
            uid_in_subject(&filled).unwrap().as_str(),
            "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94"
        );
        assert_eq!(
            subject_words(&filled).summary.as_deref(),
            Some("Device went Offline on 10.10.0.5")
        );
        // Unfilled, it carries no uid and no summary.
        assert_eq!(uid_in_subject(EMAIL_SUBJECT), None);
        assert_eq!(subject_words(EMAIL_SUBJECT).summary, None);
    }
}
