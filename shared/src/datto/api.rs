//! Datto RMM REST wire types (sites, alerts, devices, paging, request rate) as the API
//! sends them, with tolerant parsing and the conversion of an alert into `AlertFacts`.
//!
//! Datto's spec types dates as `date-time` but the wire carries epoch milliseconds; some
//! clients also met seconds, ISO strings and the .NET minimum date as "no date"
//! (vendor notes §3). Every date here goes through [`datto_time`], which accepts all of
//! them. Unknown fields are ignored and nullable fields default, so a new Datto build
//! does not break the poll.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use crate::domain::alerts::{AlertFacts, AlertUid, DeviceFacts};

// ---------------------------------------------------------------------------------------
// Dates and lenient scalars
// ---------------------------------------------------------------------------------------

/// The .NET `DateTime.MinValue` in epoch milliseconds, Datto's "no date".
pub const NO_DATE_MS: i64 = -62_135_596_800_000;

/// Numbers at or above this are epoch milliseconds, below it epoch seconds: 1e11 seconds
/// is the year 5138, 1e11 milliseconds is March 1973.
const MS_THRESHOLD: f64 = 1e11;

/// Read a Datto date from a JSON value: epoch milliseconds or seconds (integer, float or
/// numeric string), an ISO 8601 / RFC 3339 string (a zone-less one counts as UTC), or
/// null. The .NET minimum-date sentinel, any date before 1971 and unreadable strings
/// yield `None`: a date Datto did not really set must not fail a whole page.
pub fn datto_time(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    match v {
        serde_json::Value::Number(n) => n.as_f64().and_then(from_epoch_number),
        serde_json::Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return None;
            }
            if let Ok(n) = s.parse::<f64>() {
                return from_epoch_number(n);
            }
            let parsed = DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                        .iter()
                        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                        .map(|n| Utc.from_utc_datetime(&n))
                });
            parsed.filter(plausible)
        }
        _ => None,
    }
}

fn from_epoch_number(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() || n as i64 == NO_DATE_MS {
        return None;
    }
    let ms = if n.abs() >= MS_THRESHOLD { n } else { n * 1000.0 };
    DateTime::from_timestamp_millis(ms as i64).filter(plausible)
}

fn plausible(d: &DateTime<Utc>) -> bool {
    d.timestamp() >= 31_536_000 // 1971-01-01
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(datto_time(&serde_json::Value::deserialize(d)?))
}

/// A string field that may arrive as a number or bool; empty strings count as absent.
fn de_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if s.trim().is_empty() => None,
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// A field whose `null` means its default (bools, lists).
fn de_null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An integer that may arrive as a number or numeric string.
fn de_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// True when `s` has the 8-4-4-4-12 hex shape of a UUID.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

// ---------------------------------------------------------------------------------------
// Paging
// ---------------------------------------------------------------------------------------

/// `pageDetails` of every list answer. `nextPageUrl` is absolute and `null` on the last
/// page; `totalCount` is absent for alert lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageDetails {
    #[serde(default, deserialize_with = "de_int")]
    pub count: Option<i64>,
    #[serde(default, deserialize_with = "de_int")]
    pub total_count: Option<i64>,
    #[serde(default, deserialize_with = "de_text")]
    pub prev_page_url: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub next_page_url: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Sites
// ---------------------------------------------------------------------------------------

/// `devicesStatus` of a site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevicesStatus {
    #[serde(default, deserialize_with = "de_int")]
    pub number_of_devices: Option<i64>,
    #[serde(default, deserialize_with = "de_int")]
    pub number_of_online_devices: Option<i64>,
    #[serde(default, deserialize_with = "de_int")]
    pub number_of_offline_devices: Option<i64>,
}

/// A site's proxy. The proxy password Datto also sends is deliberately not read, so it
/// can neither be logged nor stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxySettings {
    #[serde(default, deserialize_with = "de_text")]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "de_int")]
    pub port: Option<i64>,
    #[serde(default, rename = "type", deserialize_with = "de_text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub username: Option<String>,
}

/// A Datto site (`GET /v2/account/sites`, `GET /v2/site/{uid}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    #[serde(default, deserialize_with = "de_int")]
    pub id: Option<i64>,
    /// A UUID — except for the "Deleted Devices" system site.
    pub uid: String,
    #[serde(default, deserialize_with = "de_text")]
    pub account_uid: Option<String>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "de_text")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub notes: Option<String>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub on_demand: bool,
    #[serde(default, deserialize_with = "de_null_default")]
    pub splashtop_auto_install: bool,
    #[serde(default)]
    pub proxy_settings: Option<ProxySettings>,
    #[serde(default)]
    pub devices_status: Option<DevicesStatus>,
    #[serde(default, deserialize_with = "de_text")]
    pub autotask_company_name: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub autotask_company_id: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub portal_url: Option<String>,
}

impl Site {
    /// The system site "Deleted Devices" (recognised by name, and by a uid that is not a
    /// UUID, whose per-site calls fail): site import skips it.
    pub fn is_deleted_devices(&self) -> bool {
        self.name.trim().eq_ignore_ascii_case("Deleted Devices") || !is_uuid(&self.uid)
    }

    /// One of the sites every new account starts with (`Managed`, `OnDemand`); callers
    /// may offer to skip them.
    pub fn is_default_site(&self) -> bool {
        let n = self.name.trim();
        n.eq_ignore_ascii_case("Managed") || n.eq_ignore_ascii_case("OnDemand")
    }
}

// ---------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------

/// `alertSourceInfo`: where the alert was raised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertSourceInfo {
    #[serde(default, deserialize_with = "de_text")]
    pub device_uid: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub device_name: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub site_uid: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub site_name: Option<String>,
}

/// `alertMonitorInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertMonitorInfo {
    #[serde(default, deserialize_with = "de_null_default")]
    pub sends_emails: bool,
    #[serde(default, deserialize_with = "de_null_default")]
    pub creates_ticket: bool,
}

/// One entry of `responseActions` (e-mail sent, webhook executed or failed, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseAction {
    #[serde(default, deserialize_with = "de_time")]
    pub action_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de_text")]
    pub action_type: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub action_reference: Option<String>,
    #[serde(default, deserialize_with = "de_int")]
    pub action_reference_int: Option<i64>,
}

/// A Datto alert (`GET /v2/alert/{uid}`, items of the alert lists). It has no message:
/// the text webhooks carry as `[alert_message]` is not in the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub alert_uid: String,
    /// `Critical`, `High`, `Moderate`, `Low`, `Information` or `Unknown`.
    #[serde(default, deserialize_with = "de_text")]
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub diagnostics: Option<String>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub resolved: bool,
    #[serde(default, deserialize_with = "de_text")]
    pub resolved_by: Option<String>,
    #[serde(default, deserialize_with = "de_time")]
    pub resolved_on: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub muted: bool,
    #[serde(default, deserialize_with = "de_text")]
    pub ticket_number: Option<String>,
    /// When the alert was raised.
    #[serde(default, deserialize_with = "de_time")]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub alert_monitor_info: Option<AlertMonitorInfo>,
    /// Polymorphic on `"@class"`; kept raw because new monitors keep adding classes.
    #[serde(default)]
    pub alert_context: Option<serde_json::Value>,
    #[serde(default)]
    pub alert_source_info: Option<AlertSourceInfo>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub response_actions: Vec<ResponseAction>,
    #[serde(default, deserialize_with = "de_int")]
    pub autoresolve_mins: Option<i64>,
}

impl Alert {
    /// The alert uid as a validated domain value.
    pub fn uid(&self) -> Result<AlertUid, crate::domain::DomainError> {
        AlertUid::parse("alertUid", &self.alert_uid)
    }

    /// The `@class` of `alertContext`, e.g. `perf_resource_usage_ctx`.
    pub fn context_class(&self) -> Option<&str> {
        self.alert_context.as_ref()?.get("@class")?.as_str()
    }

    /// True when Datto recorded a failed webhook delivery for this alert — a webhook the
    /// poll has to make up for.
    pub fn webhook_failed(&self) -> bool {
        self.response_actions
            .iter()
            .any(|a| a.action_type.as_deref() == Some("WEBHOOK_EXECUTION_ERROR"))
    }

    /// What the alert tells the domain. `message` stays `None`: the API has no alert text,
    /// so summaries are built from context and diagnostics.
    pub fn to_facts(&self) -> AlertFacts {
        let src = self.alert_source_info.clone().unwrap_or_default();
        AlertFacts {
            message: None,
            priority: self.priority.clone(),
            device_uid: src.device_uid,
            device_hostname: src.device_name,
            site_uid: src.site_uid,
            site_name: src.site_name,
            diagnostics: self.diagnostics.clone(),
            context: self.alert_context.clone().filter(|c| !c.is_null()),
            ..Default::default()
        }
    }
}

impl From<&Alert> for AlertFacts {
    fn from(a: &Alert) -> AlertFacts {
        a.to_facts()
    }
}

// ---------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------

/// `deviceType` of a device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceType {
    #[serde(default, deserialize_with = "de_text")]
    pub category: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "de_text")]
    pub kind: Option<String>,
}

/// The part of a Datto device (`GET /v2/device/{uid}`) deskbridge uses; `hostname` is the
/// ticket asset, `uid` the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    #[serde(default, deserialize_with = "de_int")]
    pub id: Option<i64>,
    pub uid: String,
    #[serde(default, deserialize_with = "de_int")]
    pub site_id: Option<i64>,
    #[serde(default, deserialize_with = "de_text")]
    pub site_uid: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub site_name: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub hostname: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub int_ip_address: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub ext_ip_address: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub operating_system: Option<String>,
    /// `DOMAIN\user`.
    #[serde(default, deserialize_with = "de_text")]
    pub last_logged_in_user: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub domain: Option<String>,
    #[serde(default)]
    pub device_type: Option<DeviceType>,
    /// `device`, `printer`, `esxihost`, `rmmnetworkdevice` or `unknown`.
    #[serde(default, deserialize_with = "de_text")]
    pub device_class: Option<String>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub online: bool,
    #[serde(default, deserialize_with = "de_null_default")]
    pub suspended: bool,
    #[serde(default, deserialize_with = "de_null_default")]
    pub deleted: bool,
    #[serde(default, deserialize_with = "de_null_default")]
    pub reboot_required: bool,
    #[serde(default, deserialize_with = "de_time")]
    pub last_seen: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de_time")]
    pub last_reboot: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de_time")]
    pub last_audit_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de_time")]
    pub creation_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de_text")]
    pub portal_url: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub web_remote_url: Option<String>,
}

impl Device {
    /// What enrichment needs of the device.
    pub fn to_facts(&self) -> DeviceFacts {
        DeviceFacts {
            uid: self.uid.clone(),
            hostname: self.hostname.clone(),
            site_uid: self.site_uid.clone(),
            site_name: self.site_name.clone(),
        }
    }
}

/// The device facts of a device answer kept as raw JSON (as `DattoApi::device` returns
/// it); `None` when it is not a device object.
pub fn device_facts(v: &serde_json::Value) -> Option<DeviceFacts> {
    serde_json::from_value::<Device>(v.clone()).ok().map(|d| d.to_facts())
}

// ---------------------------------------------------------------------------------------
// Account and request rate
// ---------------------------------------------------------------------------------------

/// `GET /v2/account`, the cheap "test configuration" call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    #[serde(default, deserialize_with = "de_int")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "de_text")]
    pub uid: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de_text")]
    pub currency: Option<String>,
    /// `{bilingEmail, deviceLimit, timeZone}` (sic), kept raw.
    #[serde(default)]
    pub descriptor: Option<serde_json::Value>,
    #[serde(default)]
    pub devices_status: Option<serde_json::Value>,
}

/// One bucket of `operationWriteStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationStatus {
    #[serde(default, deserialize_with = "de_int")]
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "de_int")]
    pub count: Option<i64>,
}

/// `GET /v2/system/request_rate`: the account's usage of its rolling quota (shared with
/// every other integration of the account).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateStatus {
    #[serde(default, deserialize_with = "de_int")]
    pub sliding_time_window_size_seconds: Option<i64>,
    #[serde(default, deserialize_with = "de_text")]
    pub account_uid: Option<String>,
    #[serde(default, deserialize_with = "de_int")]
    pub account_count: Option<i64>,
    #[serde(default, deserialize_with = "de_int")]
    pub account_rate_limit: Option<i64>,
    #[serde(default)]
    pub account_cut_off_ratio: Option<f64>,
    #[serde(default, deserialize_with = "de_int")]
    pub account_write_rate_limit: Option<i64>,
    #[serde(default, deserialize_with = "de_int")]
    pub account_write_count: Option<i64>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub operation_write_status: BTreeMap<String, OperationStatus>,
}

impl RateStatus {
    /// Reads left in the current window before Datto starts slowing every answer
    /// (`limit × cut-off ratio − count`, ratio 0.9 when absent); `None` when the account
    /// does not report its read quota.
    pub fn read_headroom(&self) -> Option<i64> {
        let limit = self.account_rate_limit? as f64;
        let ratio = self.account_cut_off_ratio.unwrap_or(0.9);
        Some(((limit * ratio).floor() as i64 - self.account_count.unwrap_or(0)).max(0))
    }
}

// ---------------------------------------------------------------------------------------
// Token
// ---------------------------------------------------------------------------------------

/// `POST /auth/oauth/token` success body (only the fields deskbridge reads).
#[derive(Clone, Deserialize)]
pub(crate) struct TokenAnswer {
    pub access_token: String,
    #[serde(default, deserialize_with = "de_int")]
    pub expires_in: Option<i64>,
}

/// Parse one list page: `pageDetails` and the array named `items`. Items that do not
/// parse are skipped and logged, so one odd alert cannot stop the poll; a page without
/// the array or with non-object JSON is malformed.
pub(crate) fn parse_page<T: de::DeserializeOwned>(body: &[u8], items: &str) -> Result<(PageDetails, Vec<T>), String> {
    let mut v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("list page is not JSON: {e}"))?;
    let obj = v.as_object_mut().ok_or("list page is not a JSON object")?;
    let details = match obj.remove("pageDetails") {
        Some(d) if !d.is_null() => serde_json::from_value(d).map_err(|e| format!("pageDetails: {e}"))?,
        _ => PageDetails::default(),
    };
    let raw = match obj.remove(items) {
        Some(serde_json::Value::Array(a)) => a,
        Some(serde_json::Value::Null) => Vec::new(),
        _ => return Err(format!("list page has no `{items}` array")),
    };
    let mut out = Vec::with_capacity(raw.len());
    for (i, item) in raw.into_iter().enumerate() {
        match serde_json::from_value(item) {
            Ok(t) => out.push(t),
            Err(e) => tracing::warn!(items, index = i, error = %e, "skipping unreadable Datto list item"),
        }
    }
    Ok((details, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALERT: &str = include_str!("fixtures/alert-5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94.json");
    const ALERT_RESOLVED: &str = include_str!("fixtures/alert-resolved-5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94.json");
    const ALERTS_OPEN: &str = include_str!("fixtures/alerts-open-page-0.json");
    const SITES_1: &str = include_str!("fixtures/sites-page-1.json");
    const SITES_0: &str = include_str!("fixtures/sites-page-0.json");
    const RATE: &str = include_str!("fixtures/rate.json");

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
    }

    #[test]
    fn dates_accept_every_shape_datto_was_seen_sending() {
        let cases = [
            (
                json!(1795425244000_i64),
                at("2026-11-23T09:14:04Z"),
                "epoch milliseconds",
            ),
            (json!(1795425244), at("2026-11-23T09:14:04Z"), "epoch seconds"),
            (
                json!(1795425244000.0),
                at("2026-11-23T09:14:04Z"),
                "milliseconds as float",
            ),
            (
                json!("1795425244000"),
                at("2026-11-23T09:14:04Z"),
                "milliseconds as string",
            ),
            (json!("2026-11-23T09:14:04Z"), at("2026-11-23T09:14:04Z"), "RFC 3339"),
            (json!("2026-11-23T10:14:04+01:00"), at("2026-11-23T09:14:04Z"), "offset"),
            (
                json!("2026-11-23T09:14:04.5"),
                at("2026-11-23T09:14:04.5Z"),
                "zone-less ISO",
            ),
            (json!(NO_DATE_MS), None, ".NET minimum-date sentinel"),
            (json!("-62135596800000"), None, "sentinel as string"),
            (json!("0001-01-01T00:00:00"), None, ".NET minimum date as ISO"),
            (json!(0), None, "zero"),
            (json!(null), None, "null"),
            (json!(""), None, "empty string"),
            (json!("yesterday"), None, "unreadable text"),
            (json!(true), None, "wrong type"),
        ];
        for (v, want, why) in cases {
            assert_eq!(datto_time(&v), want, "{why}: {v}");
        }
    }

    #[test]
    fn fixture_alert_converts_into_facts_without_a_message() {
        let a: Alert = serde_json::from_str(ALERT).unwrap();
        assert_eq!(a.uid().unwrap().as_str(), "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94");
        assert!(!a.resolved);
        assert_eq!(a.resolved_on, None);
        assert_eq!(a.timestamp, at("2026-11-23T09:14:04Z"));
        assert_eq!(a.context_class(), Some("perf_resource_usage_ctx"));
        assert_eq!(a.response_actions.len(), 2);
        assert!(!a.webhook_failed());
        let f = AlertFacts::from(&a);
        assert_eq!(f.message, None);
        assert_eq!(f.priority.as_deref(), Some("High"));
        assert_eq!(f.device_hostname.as_deref(), Some("ACME-DC01"));
        assert_eq!(f.device_uid.as_deref(), Some("b2e4a7c1-6f3d-4e58-a9b0-7d2c1e8f4a63"));
        assert_eq!(f.site_uid.as_deref(), Some("0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"));
        assert_eq!(f.site_name.as_deref(), Some("Acme Ltd - Head Office"));
        assert!(f.diagnostics.unwrap().starts_with("CPU usage 93.4%"));
        assert_eq!(f.context.unwrap()["percentage"], json!(93.4));

        let r: Alert = serde_json::from_str(ALERT_RESOLVED).unwrap();
        assert!(r.resolved);
        assert_eq!(r.resolved_by.as_deref(), Some("deskbridge-api"));
        assert_eq!(r.resolved_on.unwrap().timestamp_millis(), 1795425642517);
    }

    #[test]
    fn open_alert_page_has_no_total_and_flags_the_missed_webhook() {
        let (details, alerts) = parse_page::<Alert>(ALERTS_OPEN.as_bytes(), "alerts").unwrap();
        assert_eq!(details.total_count, None);
        assert_eq!(details.next_page_url, None);
        assert_eq!(alerts.len(), 3);
        let missed: Vec<_> = alerts
            .iter()
            .filter(|a| a.webhook_failed())
            .map(|a| a.alert_uid.as_str())
            .collect();
        assert_eq!(missed, ["3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28"]);
        assert_eq!(alerts[2].context_class(), Some("comp_script_ctx"));
    }

    #[test]
    fn deleted_devices_site_is_recognised_by_name_and_by_its_non_uuid_uid() {
        let (d0, s0) = parse_page::<Site>(SITES_0.as_bytes(), "sites").unwrap();
        let (d1, s1) = parse_page::<Site>(SITES_1.as_bytes(), "sites").unwrap();
        assert_eq!(d0.total_count, Some(4));
        assert!(d0.next_page_url.as_deref().unwrap().ends_with("page=1"));
        assert_eq!(d1.next_page_url, None);
        assert_eq!(s0[1].proxy_settings.as_ref().unwrap().port, Some(3128));
        let flagged: Vec<_> = s0
            .iter()
            .chain(&s1)
            .filter(|s| s.is_deleted_devices())
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(flagged, ["Deleted Devices"]);
        let mut renamed = s1[1].clone();
        renamed.name = "Gelöschte Geräte".into();
        assert!(
            renamed.is_deleted_devices(),
            "a non-UUID uid alone marks the system site"
        );
    }

    #[test]
    fn unreadable_items_are_skipped_but_a_page_without_its_array_is_malformed() {
        let body = json!({"pageDetails": {"count": 2, "nextPageUrl": null},
            "alerts": [{"alertUid": "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94", "resolved": null}, {"priority": "High"}]});
        let (_, alerts) = parse_page::<Alert>(body.to_string().as_bytes(), "alerts").unwrap();
        assert_eq!(alerts.len(), 1);
        assert!(!alerts[0].resolved);
        assert!(parse_page::<Alert>(b"{\"pageDetails\":{}}", "alerts").is_err());
        assert!(parse_page::<Alert>(b"[]", "alerts").is_err());
        assert!(parse_page::<Alert>(b"<html>", "alerts").is_err());
    }

    #[test]
    fn request_rate_reports_read_headroom_under_the_cut_off() {
        let r: RateStatus = serde_json::from_str(RATE).unwrap();
        assert_eq!(r.account_rate_limit, Some(600));
        assert_eq!(r.operation_write_status["site-update"].limit, Some(100));
        assert_eq!(r.read_headroom(), Some(540 - 37));
        assert_eq!(RateStatus::default().read_headroom(), None);
    }

    #[test]
    fn device_dates_may_be_iso_strings() {
        let d: Device = serde_json::from_value(json!({
            "uid": "b2e4a7c1-6f3d-4e58-a9b0-7d2c1e8f4a63", "hostname": "ACME-DC01",
            "lastSeen": "2026-11-23T09:00:00Z", "lastReboot": 1795400000000_i64,
            "deviceType": {"category": "Server", "type": "Physical"}, "online": null
        }))
        .unwrap();
        assert_eq!(d.last_seen, at("2026-11-23T09:00:00Z"));
        assert!(d.last_reboot.is_some());
        assert!(!d.online);
        assert_eq!(d.device_type.unwrap().kind.as_deref(), Some("Physical"));
    }

    #[test]
    fn device_answers_become_device_facts() {
        let d = json!({"uid": "b2e4a7c1-6f3d-4e58-a9b0-7d2c1e8f4a63", "hostname": "ACME-DC01",
            "siteUid": "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f", "siteName": "Acme Ltd - Head Office", "online": true});
        let f = device_facts(&d).unwrap();
        assert_eq!(f.hostname.as_deref(), Some("ACME-DC01"));
        assert_eq!(f.site_uid.as_deref(), Some("0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"));
        assert_eq!(f.site_name.as_deref(), Some("Acme Ltd - Head Office"));
        assert_eq!(device_facts(&json!({"hostname": "no uid"})), None);
    }

    #[test]
    fn polled_alerts_of_ten_context_classes_get_readable_summaries() {
        let mut alerts = parse_page::<Alert>(ALERTS_OPEN.as_bytes(), "alerts").unwrap().1;
        alerts.extend(
            parse_page::<Alert>(
                include_str!("fixtures/alerts-context-classes.json").as_bytes(),
                "alerts",
            )
            .unwrap()
            .1,
        );
        let summaries: Vec<(String, String)> = alerts
            .iter()
            .map(|a| {
                let draft = crate::domain::alerts::ticket_draft(
                    &a.uid().unwrap(),
                    &a.to_facts(),
                    &crate::domain::datto::PriorityMap::default(),
                )
                .unwrap();
                (a.context_class().unwrap().to_string(), draft.summary)
            })
            .collect();
        let want = [
            ("perf_resource_usage_ctx", "CPU usage 93.4% on ACME-DC01"),
            ("perf_disk_usage_ctx", "Disk usage alert for D: on BIRCH-FS01"),
            (
                "comp_script_ctx",
                "Backup job 'Nightly-Docs' last result: Failed (BIRCH-PC07)",
            ),
            ("online_offline_status_ctx", "COBALT-SRV01 is offline"),
            (
                "eventlog_ctx",
                "Service Control Manager event 7034 on ACME-DC01: The Print Spooler service terminated unexpectedly.  It has done this 3 time(s).",
            ),
            ("srvc_status_ctx", "Service Spooler stopped on ACME-DC01"),
            (
                "patch_ctx",
                "Patch failed on BIRCH-FS01: KB5046617 failed to install (0x800f0922)",
            ),
            ("antivirus_ctx", "Webroot SecureAnywhere not running on BIRCH-PC07"),
            ("process_status_ctx", "Process AdobeARMservice stopped on BIRCH-PC07"),
            ("custom_snmp_ctx", "SNMP UPS battery capacity is 38 on COBALT-UPS01"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(summaries, want);
    }
}
