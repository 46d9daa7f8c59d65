//! Which device and which Datto monitor an alert comes from. Datto has no monitor id: a
//! re-raise is a new alert uid, so identity is built from what the alert carries.
//!
//! - The device is Datto's device uid, else the hostname (lower case).
//! - The monitor is, in order of preference: the `alertContext` class plus the fields that
//!   tell two monitors of that class apart (the service of `srvc_status_ctx`, the disk of
//!   `perf_disk_usage_ctx`, the log, source and code of `eventlog_ctx`, ...); else the alert
//!   message with its numbers blanked (`CPU usage 93%` and `CPU usage 97%` are one monitor);
//!   else the `alert_type` field an admin's payload may send; else `unknown`.
//!
//! Webhooks and e-mails carry no context, polled alerts no message, so an alert seen first
//! by the poll and a re-raise seen first by the webhook get different monitor ids. The
//! device is the same, so relating (same device within the window) still joins them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::alert_context::{self, AlertContext};
use crate::domain::alerts::AlertFacts;
use crate::domain::datto::is_placeholder;

/// The longest monitor id kept (characters); a longer message is cut.
pub const MONITOR_ID_MAX: usize = 200;

/// A device as noise control knows it: `uid:<device uid>` or `host:<hostname>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceKey(String);

impl DeviceKey {
    /// The device of an alert; `None` when it names neither a device uid nor a hostname.
    pub fn of(facts: &AlertFacts) -> Option<DeviceKey> {
        if let Some(uid) = known(facts.device_uid.as_deref()) {
            return Some(DeviceKey(format!("uid:{}", uid.to_lowercase())));
        }
        known(facts.device_hostname.as_deref()).map(|h| DeviceKey(format!("host:{}", h.to_lowercase())))
    }
    /// The key shared by alerts that name no device. Nothing relates, recurs or flaps
    /// under it; its record only holds such alerts while a maintenance window holds them.
    pub fn unknown() -> DeviceKey {
        DeviceKey("unknown".into())
    }
    /// A key as stored earlier (an alert's `noise_device`, a ticket's noise device).
    pub fn stored(key: &str) -> DeviceKey {
        DeviceKey(key.to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A monitor of a device, as far as the alert tells (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MonitorId(String);

impl MonitorId {
    pub fn of(facts: &AlertFacts) -> MonitorId {
        if let Some(id) = facts
            .context
            .as_ref()
            .and_then(AlertContext::of)
            .and_then(|c| from_context(&c))
        {
            return MonitorId(cut(&id));
        }
        if let Some(m) = known(facts.message.as_deref()) {
            return MonitorId(cut(&format!("message:{}", blank_numbers(m))));
        }
        if let Some(t) = alert_type(facts) {
            return MonitorId(cut(&format!("type:{}", t.to_lowercase())));
        }
        MonitorId("unknown".into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MonitorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Device + monitor: what recurrence and flapping are counted for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MonitorKey {
    pub device: DeviceKey,
    pub monitor: MonitorId,
}

impl MonitorKey {
    /// `None` when the alert names no device: then nothing is related, recurs or flaps.
    pub fn of(facts: &AlertFacts) -> Option<MonitorKey> {
        Some(MonitorKey {
            device: DeviceKey::of(facts)?,
            monitor: MonitorId::of(facts),
        })
    }
}

/// The kinds a routing rule's `monitor_types` may name for an alert, lower case: the
/// context class (`srvc_status_ctx`), the class without `_ctx` (`srvc_status`), the
/// readable kind (`service status`), and an `alert_type` or `alert_category` the payload sent.
pub fn monitor_types(facts: &AlertFacts) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(ctx) = facts.context.as_ref().and_then(AlertContext::of) {
        let class = ctx.class.to_lowercase();
        if !class.is_empty() {
            out.push(class.trim_end_matches("_ctx").to_string());
            out.push(alert_context::monitor_kind(&class).to_lowercase());
            out.push(class);
        }
    }
    for key in ["alert_type", "alert_category"] {
        if let Some(v) = field_text(facts, key) {
            let v = v.to_lowercase();
            out.push(v.trim_end_matches("_ctx").to_string());
            out.push(v);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The fields that tell two monitors of one context class apart on one device.
fn identifying_fields(class: &str) -> &'static [&'static str] {
    match class {
        "perf_resource_usage_ctx" | "temperature_ctx" | "fan_ctx" | "psu_ctx" | "disk_health_ctx" => &["type"],
        "resource_usage_ctx" | "process_resource_usage_ctx" | "status_ctx" | "process_status_ctx" => {
            &["processName", "type"]
        }
        "srvc_resource_usage_ctx" => &["serviceName", "type"],
        "srvc_status_ctx" => &["serviceName"],
        "perf_disk_usage_ctx" | "disk_usage_ctx" => &["diskName", "diskNameDesignation"],
        "eventlog_ctx" => &["logName", "source", "code"],
        "patch_ctx" => &["policyUid"],
        "antivirus_ctx" | "seccenter_ctx" | "security_management_ctx" => &["productName"],
        "custom_snmp_ctx" => &["displayName", "monitorInstance"],
        "snmp_probe_ctx" => &["ipAddress", "OID", "oid", "ruleName"],
        "ping_ctx" => &["instanceName"],
        "filesystem_ctx" => &["path", "condition"],
        "printer_ctx" => &["ipAddress", "markerSupplyIndex"],
        "action_ctx" => &["packageName"],
        _ => &[],
    }
}

fn from_context(ctx: &AlertContext<'_>) -> Option<String> {
    let class = ctx.class.to_lowercase();
    if class.is_empty() {
        return None;
    }
    let mut id = format!("ctx:{class}");
    for key in identifying_fields(&class) {
        if let Some(v) = ctx.text(key) {
            id.push('|');
            id.push_str(&v.to_lowercase());
        }
    }
    Some(id)
}

/// Lower case, first line, runs of digits as `#`, runs of white space as one space.
fn blank_numbers(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).to_lowercase();
    let mut out = String::with_capacity(line.len());
    let mut last = ' ';
    for c in line.chars() {
        let c = if c.is_ascii_digit() {
            '#'
        } else if c.is_whitespace() {
            ' '
        } else {
            c
        };
        if (c == '#' || c == ' ') && c == last {
            continue;
        }
        out.push(c);
        last = c;
    }
    out.trim().to_string()
}

fn cut(s: &str) -> String {
    s.chars().take(MONITOR_ID_MAX).collect()
}

/// A value that is really there: not blank, not an unfilled `[placeholder]`.
fn known(v: Option<&str>) -> Option<&str> {
    let v = v?.trim();
    (!v.is_empty() && !is_placeholder(v)).then_some(v)
}

/// A text field an admin's payload added (`alert_type`), from the unknown fields or the
/// additional values.
fn field_text<'a>(facts: &'a AlertFacts, key: &str) -> Option<&'a str> {
    [&facts.other_fields, &facts.additional_values]
        .into_iter()
        .find_map(|m| m.get(key).and_then(Value::as_str))
        .and_then(|v| known(Some(v)))
}

fn alert_type(facts: &AlertFacts) -> Option<&str> {
    field_text(facts, "alert_type")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(v: Value) -> AlertFacts {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_device_is_its_uid_else_its_hostname() {
        let f = facts(json!({"device_uid": "B2E4A7C1-6F3D-4E58-A9B0-7D2C1E8F4A63", "device_hostname": "ACME-DC01"}));
        assert_eq!(
            DeviceKey::of(&f).unwrap().as_str(),
            "uid:b2e4a7c1-6f3d-4e58-a9b0-7d2c1e8f4a63"
        );
        let f = facts(json!({"device_uid": "[device_uid]", "device_hostname": "ACME-DC01"}));
        assert_eq!(DeviceKey::of(&f).unwrap().as_str(), "host:acme-dc01");
        assert_eq!(DeviceKey::of(&facts(json!({"device_hostname": "  "}))), None);
        assert_eq!(MonitorKey::of(&facts(json!({"message": "x"}))), None);
    }

    #[test]
    fn context_classes_tell_monitors_apart_by_their_subject() {
        let spooler =
            facts(json!({"context": {"@class": "srvc_status_ctx", "serviceName": "Spooler", "status": "STOPPED"}}));
        let spooler_again =
            facts(json!({"context": {"@class": "srvc_status_ctx", "serviceName": "spooler", "status": "NOTRUNNING"}}));
        let dns = facts(json!({"context": {"@class": "srvc_status_ctx", "serviceName": "DNS"}}));
        assert_eq!(MonitorId::of(&spooler).as_str(), "ctx:srvc_status_ctx|spooler");
        assert_eq!(
            MonitorId::of(&spooler),
            MonitorId::of(&spooler_again),
            "status is not identity"
        );
        assert_ne!(MonitorId::of(&spooler), MonitorId::of(&dns));

        let cpu = facts(json!({"context": {"@class": "perf_resource_usage_ctx", "type": "CPU", "percentage": 93.4}}));
        let cpu2 = facts(json!({"context": {"@class": "perf_resource_usage_ctx", "type": "CPU", "percentage": 97.0}}));
        let mem =
            facts(json!({"context": {"@class": "perf_resource_usage_ctx", "type": "MEMORY", "percentage": 93.4}}));
        assert_eq!(MonitorId::of(&cpu), MonitorId::of(&cpu2));
        assert_ne!(MonitorId::of(&cpu), MonitorId::of(&mem));

        let ev = facts(
            json!({"context": {"@class": "eventlog_ctx", "logName": "System", "source": "Disk", "code": 7,
            "description": "bad block", "triggerCount": 3}}),
        );
        assert_eq!(MonitorId::of(&ev).as_str(), "ctx:eventlog_ctx|system|disk|7");
        let unknown_class = facts(json!({"context": {"@class": "brand_new_ctx", "x": 1}}));
        assert_eq!(MonitorId::of(&unknown_class).as_str(), "ctx:brand_new_ctx");
    }

    #[test]
    fn without_context_the_message_with_numbers_blanked_is_the_monitor() {
        let a = facts(json!({"message": "CPU usage on ACME-DC01 has been above 90% for 15 minutes"}));
        let b = facts(json!({"message": "CPU usage on ACME-DC01 has been above 95%  for 5 minutes\nmore"}));
        let c = facts(json!({"message": "Disk C: usage on ACME-DC01 above 90%"}));
        assert_eq!(
            MonitorId::of(&a).as_str(),
            "message:cpu usage on acme-dc# has been above #% for # minutes"
        );
        assert_eq!(MonitorId::of(&a), MonitorId::of(&b));
        assert_ne!(MonitorId::of(&a), MonitorId::of(&c));
        let long = facts(json!({"message": "x".repeat(1000)}));
        assert_eq!(MonitorId::of(&long).as_str().chars().count(), MONITOR_ID_MAX);
    }

    #[test]
    fn the_context_wins_over_the_message_and_the_alert_type_is_the_last_resort() {
        let both = facts(json!({"message": "Service Spooler stopped",
            "context": {"@class": "srvc_status_ctx", "serviceName": "Spooler"}}));
        assert_eq!(MonitorId::of(&both).as_str(), "ctx:srvc_status_ctx|spooler");
        let typed = facts(json!({"other_fields": {"alert_type": "Online_Offline_Status"}}));
        assert_eq!(MonitorId::of(&typed).as_str(), "type:online_offline_status");
        let placeholder = facts(json!({"message": "[alert_message]"}));
        assert_eq!(MonitorId::of(&placeholder).as_str(), "unknown");
    }

    #[test]
    fn monitor_types_name_the_class_three_ways_and_the_payload_type() {
        let f = facts(
            json!({"context": {"@class": "srvc_status_ctx", "serviceName": "Spooler"},
            "other_fields": {"alert_type": "srvc_status"}}),
        );
        assert_eq!(monitor_types(&f), ["service status", "srvc_status", "srvc_status_ctx"]);
        assert!(monitor_types(&facts(json!({"message": "x"}))).is_empty());
    }
}
