//! Datto's `alertContext` (polymorphic on `@class`) as one short readable sentence per
//! class, for tickets made without an alert message (the poll, enrichment).
//!
//! The classes are the 27 of Datto's OpenAPI document (API 2.0.0, build 118) with the
//! `@class` strings real clients map them to, plus the new-UI variants seen on real
//! accounts (`perf_*`, `srvc_*`, `fs_object_ctx`, `process_*`). A class without its key
//! fields, or one Datto adds later, falls back to the diagnostics' first line, else to a
//! sentence that names the monitor kind and the device. Units Datto does not document
//! (disk space, process memory) are not guessed: such numbers are shown bare.

use serde_json::{Map, Value};

/// A read-only view of an `alertContext` object: its class and its other fields.
#[derive(Debug, Clone, Copy)]
pub struct AlertContext<'a> {
    pub class: &'a str,
    fields: &'a Map<String, Value>,
}

impl<'a> AlertContext<'a> {
    /// The view of a context value; `None` unless it is a JSON object.
    pub fn of(v: &'a Value) -> Option<AlertContext<'a>> {
        let fields = v.as_object()?;
        let class = fields.get("@class").and_then(Value::as_str).unwrap_or("").trim();
        Some(AlertContext { class, fields })
    }

    /// A non-empty text field (numbers and booleans shown as text).
    pub fn text(&self, key: &str) -> Option<String> {
        match self.fields.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(number(n.as_f64()?)),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A numeric field, also when sent as a numeric string.
    pub fn number(&self, key: &str) -> Option<f64> {
        match self.fields.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// An enum-like field (`NOTRUNNING`, `ABOVE_THRESHOLD`) as lower-case words.
    fn words(&self, key: &str) -> Option<String> {
        self.text(key).map(|s| enum_words(&s))
    }

    /// A list field as `a, b, c` (strings only; empty lists are absent).
    fn list(&self, key: &str) -> Option<String> {
        let items: Vec<&str> = self
            .fields
            .get(key)?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        (!items.is_empty()).then(|| items.join(", "))
    }
}

/// What the monitor behind a class is called in a sentence (`Disk usage`, `Event log`).
pub fn monitor_kind(class: &str) -> String {
    let known = match class {
        "perf_resource_usage_ctx" | "resource_usage_ctx" | "process_resource_usage_ctx" => "Resource usage",
        "srvc_resource_usage_ctx" => "Service resource usage",
        "perf_disk_usage_ctx" | "disk_usage_ctx" => "Disk usage",
        "online_offline_status_ctx" => "Online status",
        "eventlog_ctx" => "Event log",
        "patch_ctx" => "Patch",
        "srvc_status_ctx" => "Service status",
        "status_ctx" | "process_status_ctx" => "Process status",
        "antivirus_ctx" => "Antivirus",
        "seccenter_ctx" => "Security center",
        "security_management_ctx" => "Security management",
        "custom_snmp_ctx" | "snmp_probe_ctx" => "SNMP",
        "perf_mon_ctx" | "windows_performance_ctx" => "Performance counter",
        "wmi_ctx" => "WMI",
        "action_ctx" => "Software",
        "backup_management_ctx" => "Backup",
        "disk_health_ctx" => "Disk health",
        "fan_ctx" => "Fan",
        "psu_ctx" => "Power supply",
        "temperature_ctx" => "Temperature",
        "endpoint_security_threat_ctx" => "Endpoint security",
        "endpoint_security_windows_defender_ctx" => "Windows Defender",
        "filesystem_ctx" | "fs_object_ctx" => "File system",
        "network_monitor_ctx" => "Network",
        "ping_ctx" => "Ping",
        "printer_ctx" => "Printer",
        "ransomware_ctx" => "Ransomware",
        c if c.starts_with("comp_script_ctx") => "Component",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    // An unknown class still says what it is: `brand_new_ctx` -> `Brand new`.
    let words = class.trim_end_matches("_ctx").replace('_', " ");
    let words = words.trim();
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The sentence for a context, or `None` when its class is unknown or lacks the fields
/// the sentence needs. `device` is the device's name as it should appear.
pub fn sentence(ctx: &AlertContext<'_>, device: &str, diagnostics: Option<&str>) -> Option<String> {
    let on = |s: String| format!("{s} on {device}");
    let class = ctx.class;
    let text = match class {
        "perf_resource_usage_ctx" => {
            let kind = resource(ctx.text("type").as_deref().unwrap_or("Resource"));
            match ctx.number("percentage") {
                Some(p) => on(format!("{kind} usage {p:.1}%")),
                None => on(format!("{kind} usage alert")),
            }
        }
        "resource_usage_ctx" | "process_resource_usage_ctx" => {
            on(usage(format!("Process {}", ctx.text("processName")?), ctx))
        }
        "srvc_resource_usage_ctx" => on(usage(format!("Service {}", ctx.text("serviceName")?), ctx)),
        "perf_disk_usage_ctx" | "disk_usage_ctx" => {
            let disk = match (ctx.text("diskName"), ctx.text("diskNameDesignation").as_deref()) {
                (Some(d), _) => d,
                (None, Some("ALL_VOLUMES")) => "all volumes".into(),
                (None, Some("ANY_VOLUME")) => "a volume".into(),
                (None, _) => "a disk".into(),
            };
            on(format!("Disk usage alert for {disk}"))
        }
        "online_offline_status_ctx" => format!("{device} is {}", ctx.words("status")?),
        "eventlog_ctx" => {
            let source = ctx.text("source");
            let code = ctx.text("code");
            let what = match (&source, &code) {
                (Some(s), Some(c)) => format!("{s} event {c}"),
                (Some(s), None) => format!("{s} event"),
                (None, Some(c)) => format!("Event {c}"),
                (None, None) => return None,
            };
            match (first_line(ctx.text("description").as_deref()), ctx.text("logName")) {
                (Some(d), _) => format!("{} on {device}: {d}", what),
                (None, Some(log)) => on(format!("{what} in the {log} log")),
                (None, None) => on(what),
            }
        }
        "patch_ctx" => {
            let result = ctx.words("result");
            let info = first_line(ctx.text("info").as_deref());
            match (result, info) {
                (Some(r), Some(i)) => format!("Patch {r} on {device}: {i}"),
                (Some(r), None) => on(format!("Patch {r}")),
                (None, Some(i)) => format!("Patch alert on {device}: {i}"),
                (None, None) => return None,
            }
        }
        "srvc_status_ctx" => {
            let service = ctx.text("serviceName")?;
            on(format!(
                "Service {service} {}",
                ctx.words("status").unwrap_or_else(|| "changed".into())
            ))
        }
        "status_ctx" | "process_status_ctx" => {
            let process = ctx.text("processName")?;
            on(format!(
                "Process {process} {}",
                ctx.words("status").unwrap_or_else(|| "changed status".into())
            ))
        }
        "antivirus_ctx" => {
            let product = ctx.text("productName").unwrap_or_else(|| "Antivirus".into());
            let status = match ctx.text("status").as_deref() {
                Some("NOTDETECTED") => "not detected".to_string(),
                Some("NOTRUNNING") => "not running".to_string(),
                Some("RUNNINGNOTUPTODATE") => "running but not up to date".to_string(),
                Some(other) => enum_words(other),
                None => "alert".to_string(),
            };
            on(format!("{product} {status}"))
        }
        "seccenter_ctx" => {
            let product = ctx.text("productName").unwrap_or_else(|| "Security product".into());
            let state = match ctx.text("alertType").as_deref() {
                Some("NOT_UPTODATE") => "not up to date".to_string(),
                Some(other) => enum_words(other),
                None => "alert".to_string(),
            };
            on(format!("{product} {state}"))
        }
        "security_management_ctx" => {
            let product = ctx.text("productName").unwrap_or_else(|| "Security product".into());
            if let Some(virus) = ctx.text("virusName") {
                format!("{product} found {virus} on {device}")
            } else if let Some(days) = ctx.number("productNotUpdatedForDays").filter(|d| *d > 0.0) {
                on(format!("{product} not updated for {} days", number(days)))
            } else if let Some(hours) = ctx.number("systemRemainsInfectedForHours").filter(|h| *h > 0.0) {
                format!("{device} still infected after {} hours ({product})", number(hours))
            } else if let Some(days) = ctx.number("expiryLicenseForDays") {
                on(format!("{product} licence expires in {} days", number(days)))
            } else {
                on(format!("{product} alert"))
            }
        }
        "custom_snmp_ctx" => {
            let name = ctx.text("displayName").or_else(|| ctx.text("monitorInstance"))?;
            match ctx.text("currentValue") {
                Some(v) => on(format!("SNMP {name} is {v}")),
                None => on(format!("SNMP {name} alert")),
            }
        }
        "snmp_probe_ctx" => {
            let name = ctx
                .text("monitorName")
                .or_else(|| ctx.text("ruleName"))
                .or_else(|| ctx.text("OID"))
                .or_else(|| ctx.text("oid"))?;
            let target = ctx
                .text("deviceName")
                .or_else(|| ctx.text("ipAddress"))
                .unwrap_or_else(|| device.to_string());
            match ctx.text("responseValue") {
                Some(v) => format!("SNMP {name} on {target}: {v}"),
                None => format!("SNMP {name} alert on {target}"),
            }
        }
        "perf_mon_ctx" | "windows_performance_ctx" => on(format!("Performance counter at {}", ctx.text("value")?)),
        "wmi_ctx" => on(format!("WMI check returned {}", ctx.text("value")?)),
        "action_ctx" => {
            let package = ctx.text("packageName")?;
            match ctx.text("actionType").as_deref() {
                Some("INSTALLED") => on(format!("Software {package} installed")),
                Some("UNINSTALLED") => on(format!("Software {package} uninstalled")),
                Some("VERSION_CHANGED") => match (ctx.text("prevVersion"), ctx.text("version")) {
                    (Some(a), Some(b)) => on(format!("Software {package} changed from {a} to {b}")),
                    (None, Some(b)) => on(format!("Software {package} changed to {b}")),
                    _ => on(format!("Software {package} changed version")),
                },
                _ => on(format!("Software {package} changed")),
            }
        }
        "backup_management_ctx" => match first_line(ctx.text("errorMessage").as_deref()) {
            Some(e) => format!("Backup failed on {device}: {e}"),
            None if ctx.number("timeout").is_some() => on("Backup timed out".to_string()),
            None => return None,
        },
        "disk_health_ctx" | "fan_ctx" | "psu_ctx" => {
            let reason = first_line(ctx.text("reason").as_deref())?;
            format!("{} alert on {device}: {reason}", monitor_kind(class))
        }
        "temperature_ctx" => {
            let degree = ctx.number("degree")?;
            let kind = ctx.text("type").filter(|t| t != "TEMPERATURE");
            match kind {
                Some(k) => on(format!("{} temperature {} degrees", resource(&k), number(degree))),
                None => on(format!("Temperature {} degrees", number(degree))),
            }
        }
        "endpoint_security_threat_ctx" => {
            format!(
                "Threat detected on {device}: {}",
                first_line(ctx.text("description").as_deref())?
            )
        }
        "endpoint_security_windows_defender_ctx" => format!(
            "Windows Defender alert on {device}: {}",
            first_line(ctx.text("description").as_deref())?
        ),
        "filesystem_ctx" | "fs_object_ctx" => {
            let path = ctx.text("path")?;
            let object = match ctx.text("objectType").as_deref() {
                Some("DIRECTORY") => "Folder",
                Some("FILE") => "File",
                _ => "Path",
            };
            match ctx.text("condition").as_deref() {
                Some("CREATED") => on(format!("{object} {path} created")),
                Some("REMOVED") => on(format!("{object} {path} removed")),
                Some(c @ ("ABOVE_THRESHOLD" | "BELOW_THRESHOLD")) => {
                    let dir = if c == "ABOVE_THRESHOLD" { "above" } else { "below" };
                    match (ctx.number("sample"), ctx.number("threshold")) {
                        (Some(s), Some(t)) => on(format!("{object} {path} at {} ({dir} {})", number(s), number(t))),
                        _ => on(format!("{object} {path} {dir} its threshold")),
                    }
                }
                _ => on(format!("{object} {path} changed")),
            }
        }
        "network_monitor_ctx" => format!(
            "Network alert on {device}: {}",
            first_line(ctx.text("description").as_deref())?
        ),
        "ping_ctx" => {
            let target = ctx.text("instanceName").unwrap_or_else(|| device.to_string());
            match (ctx.list("reasons"), ctx.number("roundtripTime")) {
                (Some(r), _) => format!("Ping to {target} failed: {r}"),
                (None, Some(ms)) => format!("Ping to {target}: round trip {} ms", number(ms)),
                (None, None) => format!("Ping to {target} failed"),
            }
        }
        "printer_ctx" => {
            let printer = ctx.text("ipAddress").unwrap_or_else(|| device.to_string());
            let level = ctx.number("currentLevel")?;
            match ctx.text("markerSupplyIndex") {
                Some(i) => format!("Printer {printer}: supply {i} at level {}", number(level)),
                None => format!("Printer {printer}: supply at level {}", number(level)),
            }
        }
        "ransomware_ctx" => match ctx.list("affectedDirectories") {
            Some(dirs) => format!("Possible ransomware on {device} in {dirs}"),
            None => format!("Possible ransomware on {device}"),
        },
        c if c.starts_with("comp_script_ctx") => {
            // The component's own diagnostic output explains more than its result values.
            if let Some(d) = first_line(diagnostics) {
                format!("{d} ({device})")
            } else {
                let samples = ctx.fields.get("samples").and_then(Value::as_object)?;
                let shown: Vec<String> = samples
                    .iter()
                    .filter_map(|(k, v)| {
                        let v = match v {
                            Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
                            Value::Number(n) => n.to_string(),
                            Value::Bool(b) => b.to_string(),
                            _ => return None,
                        };
                        Some(if k.trim().is_empty() {
                            v
                        } else {
                            format!("{}: {v}", k.trim())
                        })
                    })
                    .collect();
                if shown.is_empty() {
                    return None;
                }
                format!("Component monitor on {device}: {}", shown.join("; "))
            }
        }
        _ => return None,
    };
    Some(text)
}

/// The sentence for `context`, else the diagnostics' first line with the device, else one
/// that names the monitor kind (from the class) and the device.
pub fn summary(context: Option<&Value>, device: Option<&str>, diagnostics: Option<&str>) -> String {
    let device = device.map(str::trim).filter(|d| !d.is_empty()).unwrap_or("a device");
    let ctx = context.and_then(AlertContext::of);
    if let Some(s) = ctx.as_ref().and_then(|c| sentence(c, device, diagnostics)) {
        return s;
    }
    if let Some(first) = first_line(diagnostics) {
        return format!("{first} ({device})");
    }
    match ctx.map(|c| monitor_kind(c.class)).filter(|k| !k.is_empty()) {
        Some(kind) => format!("{kind} alert on {device}"),
        None => format!("Datto RMM alert on {device}"),
    }
}

/// `Process x: CPU usage 87.5%` from a context's `type` and `sample` (only CPU samples are
/// known to be percentages).
fn usage(subject: String, ctx: &AlertContext<'_>) -> String {
    let kind = resource(ctx.text("type").as_deref().unwrap_or("Resource"));
    match ctx.number("sample") {
        Some(s) if kind == "CPU" => format!("{subject}: CPU usage {s:.1}%"),
        Some(s) => format!("{subject}: {} usage {}", kind.to_lowercase(), number(s)),
        None => format!("{subject}: {} usage alert", kind.to_lowercase()),
    }
}

/// `CPU` stays, `MEMORY` becomes `Memory`, `SNMP_THROUGHPUT` `SNMP throughput`.
fn resource(kind: &str) -> String {
    match kind.trim() {
        "CPU" | "cpu" => "CPU".into(),
        "SNMP_THROUGHPUT" => "SNMP throughput".into(),
        "DISKHEALTH" => "Disk health".into(),
        "PSU" => "Power supply".into(),
        other => {
            let words = enum_words(other);
            let mut chars = words.chars();
            match chars.next() {
                Some(f) => f.to_uppercase().chain(chars).collect(),
                None => "Resource".into(),
            }
        }
    }
}

/// `NOT_RUNNING` / `STARTPENDING` / `Offline` as lower-case words.
fn enum_words(s: &str) -> String {
    let s = s.trim();
    let spaced = s.replace('_', " ").to_lowercase();
    // Datto glues some words together; split the ones its enums use.
    match spaced.as_str() {
        "startpending" => "start pending".into(),
        "stoppending" => "stop pending".into(),
        "continuepending" => "continue pending".into(),
        "pausepending" => "pause pending".into(),
        "notuptodate" | "not uptodate" => "not up to date".into(),
        _ => spaced,
    }
}

/// The first non-blank line, trimmed.
fn first_line(s: Option<&str>) -> Option<String> {
    s?.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

/// A number without a needless `.0`, else with one decimal.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(ctx: Value) -> String {
        summary(Some(&ctx), Some("ACME-DC01"), None)
    }

    /// One realistic context per class Datto documents (field names from its OpenAPI
    /// document, class strings as real clients map them), and its sentence.
    #[test]
    fn every_documented_class_gets_its_own_sentence() {
        let cases = [
            (
                json!({"@class": "perf_resource_usage_ctx", "type": "MEMORY", "percentage": 91.27}),
                "Memory usage 91.3% on ACME-DC01",
            ),
            (
                json!({"@class": "resource_usage_ctx", "processName": "sqlservr.exe", "type": "CPU", "sample": 87.5}),
                "Process sqlservr.exe: CPU usage 87.5% on ACME-DC01",
            ),
            (
                json!({"@class": "process_resource_usage_ctx", "processName": "w3wp.exe", "type": "MEMORY", "sample": 2048.0}),
                "Process w3wp.exe: memory usage 2048 on ACME-DC01",
            ),
            (
                json!({"@class": "srvc_resource_usage_ctx", "serviceName": "MSSQLSERVER", "type": "CPU", "sample": 75.0}),
                "Service MSSQLSERVER: CPU usage 75.0% on ACME-DC01",
            ),
            (
                json!({"@class": "disk_usage_ctx", "diskNameDesignation": "ALL_VOLUMES", "unitOfMeasure": "PERCENT"}),
                "Disk usage alert for all volumes on ACME-DC01",
            ),
            (
                json!({"@class": "online_offline_status_ctx", "status": "OFFLINE"}),
                "ACME-DC01 is offline",
            ),
            (
                json!({"@class": "eventlog_ctx", "logName": "System", "code": "7031", "type": "Error",
                    "source": "Service Control Manager", "description": "The Print Spooler service terminated unexpectedly.\nIt has done this 3 time(s).",
                    "triggerCount": 3, "lastTriggered": "2026-11-23T08:10:00Z", "causedSuspension": false}),
                "Service Control Manager event 7031 on ACME-DC01: The Print Spooler service terminated unexpectedly.",
            ),
            (
                json!({"@class": "patch_ctx", "patchUid": "p1", "policyUid": "q1", "result": "FAILED", "info": "2 of 14 patches failed to install"}),
                "Patch failed on ACME-DC01: 2 of 14 patches failed to install",
            ),
            (
                json!({"@class": "srvc_status_ctx", "serviceName": "Spooler", "status": "STOPPED"}),
                "Service Spooler stopped on ACME-DC01",
            ),
            (
                json!({"@class": "process_status_ctx", "processName": "AdobeARMservice", "status": "STOPPENDING"}),
                "Process AdobeARMservice stop pending on ACME-DC01",
            ),
            (
                json!({"@class": "status_ctx", "processName": "nginx", "status": "RUNNING"}),
                "Process nginx running on ACME-DC01",
            ),
            (
                json!({"@class": "antivirus_ctx", "productName": "Webroot SecureAnywhere", "status": "RUNNINGNOTUPTODATE"}),
                "Webroot SecureAnywhere running but not up to date on ACME-DC01",
            ),
            (
                json!({"@class": "seccenter_ctx", "productName": "Windows Firewall", "alertType": "DISABLED"}),
                "Windows Firewall disabled on ACME-DC01",
            ),
            (
                json!({"@class": "security_management_ctx", "status": 2, "productName": "Datto AV", "virusName": "Trojan:Win32/Wacatac",
                    "infectedFiles": ["C:\\Users\\x\\a.exe"]}),
                "Datto AV found Trojan:Win32/Wacatac on ACME-DC01",
            ),
            (
                json!({"@class": "custom_snmp_ctx", "displayName": "UPS battery", "currentValue": "38%", "monitorInstance": "ups1"}),
                "SNMP UPS battery is 38% on ACME-DC01",
            ),
            (
                json!({"@class": "snmp_probe_ctx", "ipAddress": "10.0.0.9", "OID": "1.3.6.1.2.1.1.3.0", "ruleName": "Uptime",
                    "responseValue": "0", "deviceName": "CORE-SW1", "monitorName": "Switch uptime"}),
                "SNMP Switch uptime on CORE-SW1: 0",
            ),
            (
                json!({"@class": "perf_mon_ctx", "value": 312.5}),
                "Performance counter at 312.5 on ACME-DC01",
            ),
            (
                json!({"@class": "windows_performance_ctx", "value": 97.0}),
                "Performance counter at 97 on ACME-DC01",
            ),
            (
                json!({"@class": "wmi_ctx", "value": "Degraded"}),
                "WMI check returned Degraded on ACME-DC01",
            ),
            (
                json!({"@class": "action_ctx", "packageName": "7-Zip", "actionType": "VERSION_CHANGED", "prevVersion": "23.01", "version": "24.08"}),
                "Software 7-Zip changed from 23.01 to 24.08 on ACME-DC01",
            ),
            (
                json!({"@class": "backup_management_ctx", "errorMessage": "Backup job 'Nightly' failed: target unreachable", "timeout": 0}),
                "Backup failed on ACME-DC01: Backup job 'Nightly' failed: target unreachable",
            ),
            (
                json!({"@class": "disk_health_ctx", "reason": "SMART: reallocated sector count above threshold", "type": "DISKHEALTH"}),
                "Disk health alert on ACME-DC01: SMART: reallocated sector count above threshold",
            ),
            (
                json!({"@class": "fan_ctx", "reason": "Fan 2 stopped", "type": "FAN"}),
                "Fan alert on ACME-DC01: Fan 2 stopped",
            ),
            (
                json!({"@class": "psu_ctx", "reason": "PSU 1 redundancy lost", "type": "PSU"}),
                "Power supply alert on ACME-DC01: PSU 1 redundancy lost",
            ),
            (
                json!({"@class": "temperature_ctx", "degree": 81.0, "type": "CPU"}),
                "CPU temperature 81 degrees on ACME-DC01",
            ),
            (
                json!({"@class": "endpoint_security_threat_ctx", "esAlertId": "e1", "description": "Ransom.Win32 blocked"}),
                "Threat detected on ACME-DC01: Ransom.Win32 blocked",
            ),
            (
                json!({"@class": "endpoint_security_windows_defender_ctx", "esAlertId": "e2", "description": "Real-time protection off"}),
                "Windows Defender alert on ACME-DC01: Real-time protection off",
            ),
            (
                json!({"@class": "filesystem_ctx", "path": "D:\\Shares", "objectType": "DIRECTORY", "condition": "ABOVE_THRESHOLD",
                    "sample": 523.0, "threshold": 500.0}),
                "Folder D:\\Shares at 523 (above 500) on ACME-DC01",
            ),
            (
                json!({"@class": "fs_object_ctx", "path": "C:\\boot.ini", "objectType": "FILE", "condition": "REMOVED"}),
                "File C:\\boot.ini removed on ACME-DC01",
            ),
            (
                json!({"@class": "network_monitor_ctx", "description": "Port 443 on 203.0.113.10 closed"}),
                "Network alert on ACME-DC01: Port 443 on 203.0.113.10 closed",
            ),
            (
                json!({"@class": "ping_ctx", "instanceName": "gateway", "roundtripTime": 0, "reasons": ["Request timed out"]}),
                "Ping to gateway failed: Request timed out",
            ),
            (
                json!({"@class": "printer_ctx", "ipAddress": "10.0.0.50", "macAddress": "00:11:22:33:44:55",
                    "markerSupplyIndex": 1, "currentLevel": 5}),
                "Printer 10.0.0.50: supply 1 at level 5",
            ),
            (
                json!({"@class": "ransomware_ctx", "state": 1, "confidenceFactor": 90,
                    "affectedDirectories": ["C:\\Users\\j.okafor\\Documents"], "watchPaths": ["C:\\Users"], "rwextension": ".locky"}),
                "Possible ransomware on ACME-DC01 in C:\\Users\\j.okafor\\Documents",
            ),
            (
                json!({"@class": "comp_script_ctx", "samples": {"Result": "3 services stopped"}}),
                "Component monitor on ACME-DC01: Result: 3 services stopped",
            ),
        ];
        for (ctx, want) in cases {
            assert_eq!(s(ctx.clone()), want, "{ctx}");
        }
    }

    #[test]
    fn components_prefer_their_diagnostics_and_unknown_classes_still_name_monitor_and_device() {
        let comp = json!({"@class": "comp_script_ctx", "samples": {"Result": "Failed"}});
        assert_eq!(
            summary(Some(&comp), Some("PC7"), Some("\nBackup job failed\nmore")),
            "Backup job failed (PC7)"
        );
        let odd = json!({"@class": "brand_new_ctx", "whatever": 1});
        assert_eq!(summary(Some(&odd), Some("PC7"), None), "Brand new alert on PC7");
        assert_eq!(summary(Some(&odd), Some("PC7"), Some("It broke")), "It broke (PC7)");
        // A known class without its key fields falls back the same way.
        let bare = json!({"@class": "srvc_status_ctx"});
        assert_eq!(summary(Some(&bare), None, None), "Service status alert on a device");
        assert_eq!(summary(None, Some("PC7"), None), "Datto RMM alert on PC7");
        assert_eq!(
            summary(Some(&json!("not an object")), None, None),
            "Datto RMM alert on a device"
        );
        assert_eq!(
            summary(Some(&json!({})), Some(" "), None),
            "Datto RMM alert on a device"
        );
    }

    #[test]
    fn numeric_strings_and_odd_values_do_not_break_a_sentence() {
        let ctx = json!({"@class": "perf_resource_usage_ctx", "type": "CPU", "percentage": "88.04"});
        assert_eq!(s(ctx), "CPU usage 88.0% on ACME-DC01");
        let ctx = json!({"@class": "online_offline_status_ctx", "status": ["ONLINE"]});
        assert_eq!(s(ctx), "Online status alert on ACME-DC01");
        let ctx = json!({"@class": "ping_ctx", "reasons": []});
        assert_eq!(s(ctx), "Ping to ACME-DC01 failed");
    }
}
