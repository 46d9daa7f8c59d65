//! What the setup helper shows an admin: the Alert Raised and Alert Resolved payloads to
//! paste into Datto, with Datto's real placeholders and the current `state` secret.

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
