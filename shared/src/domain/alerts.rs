//! The Datto RMM alert aggregate: one per alert uid, fed by webhook, e-mail and poll. The
//! pure `apply` decides what an event does; `ticket_draft` says what its ticket holds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::datto::PriorityMap;
use super::desk::Priority;
use super::tickets::{validate_custom_fields, SUMMARY_MAX};
use super::DomainError;

/// A Datto alert uid: a UUID, kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct AlertUid(String);

impl AlertUid {
    pub fn parse(field: &str, s: &str) -> Result<AlertUid, DomainError> {
        let s = s.trim();
        let groups: Vec<&str> = s.split('-').collect();
        let shape = [8, 4, 4, 4, 12];
        let ok = groups.len() == 5
            && groups
                .iter()
                .zip(shape)
                .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
        if ok {
            Ok(AlertUid(s.to_ascii_lowercase()))
        } else {
            Err(DomainError::invalid(
                field,
                format!("must be a Datto alert uid (a UUID), got {s:?}"),
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AlertUid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    Webhook,
    Email,
    Poll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertEventKind {
    Raised,
    Resolved,
}

/// What an event tells about the alert besides its uid; every field may be unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Datto's priority word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<String>,
    /// Datto's `alertContext` as received (polymorphic on `@class`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub additional_values: serde_json::Map<String, serde_json::Value>,
}

impl AlertFacts {
    /// Fill what `self` lacks from `other`.
    pub fn fill_from(&mut self, other: &AlertFacts) {
        fn f(a: &mut Option<String>, b: &Option<String>) {
            if a.is_none() {
                a.clone_from(b);
            }
        }
        f(&mut self.message, &other.message);
        f(&mut self.priority, &other.priority);
        f(&mut self.device_uid, &other.device_uid);
        f(&mut self.device_hostname, &other.device_hostname);
        f(&mut self.site_uid, &other.site_uid);
        f(&mut self.site_name, &other.site_name);
        f(&mut self.diagnostics, &other.diagnostics);
        if self.context.is_none() {
            self.context.clone_from(&other.context);
        }
        for (k, v) in &other.additional_values {
            self.additional_values.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub uid: AlertUid,
    pub kind: AlertEventKind,
    pub source: AlertSource,
    pub at: DateTime<Utc>,
    pub facts: AlertFacts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Open,
    Resolved,
}

/// What deskbridge decided about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    TicketCreated,
    Duplicate,
    TicketClosed,
    /// Resolved in Datto while its ticket was already closed here.
    AlreadyClosed,
    ResolvedBeforeRaised,
    LateRaiseIgnored,
    AlreadyResolved,
    /// An agent closed the ticket; Datto is to be told.
    ClosedByAgent,
    /// Datto confirmed the agent's close (or knew nothing of the alert).
    ResolvePropagated,
    TicketReopened,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub source: String,
    pub event: String,
    pub decision: Decision,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    pub alert_uid: AlertUid,
    /// The alert's state in Datto as far as deskbridge knows.
    pub state: AlertState,
    pub sources: Vec<AlertSource>,
    pub ticket_id: Option<u64>,
    /// Whether the alert's ticket is open here.
    #[serde(default)]
    pub ticket_open: bool,
    /// True once Datto knows about a close made here (or there was nothing to tell).
    pub resolve_propagated: bool,
    /// A close made here is waiting to be told to Datto.
    #[serde(default)]
    pub propagation_pending: bool,
    #[serde(default)]
    pub facts: AlertFacts,
    /// True once the ticket got its details from the Datto API.
    #[serde(default)]
    pub enriched: bool,
    pub first_seen_at: DateTime<Utc>,
    pub timeline: Vec<TimelineEntry>,
}

/// The answer an intake gives for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Duplicate,
    Resolved,
}

/// What the store must carry out for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Create the alert's ticket (in the same transaction as the alert).
    OpenTicket,
    /// Close the alert's ticket, recording that Datto resolved it.
    CloseTicket { ticket_id: u64 },
}

/// The result of `apply`.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub alert: Alert,
    pub outcome: Outcome,
    pub effect: Option<Effect>,
    /// False when nothing about the alert changed and no write is needed.
    pub changed: bool,
}

fn entry(ev: &AlertEvent, decision: Decision) -> TimelineEntry {
    TimelineEntry {
        at: ev.at,
        source: serde_json::to_value(ev.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        event: match ev.kind {
            AlertEventKind::Raised => "raised".into(),
            AlertEventKind::Resolved => "resolved".into(),
        },
        decision,
    }
}

/// Decide what `ev` does to the alert (absent = never seen).
pub fn apply(current: Option<&Alert>, ev: &AlertEvent) -> Applied {
    let Some(current) = current else {
        let (state, decision, outcome, effect) = match ev.kind {
            AlertEventKind::Raised => (
                AlertState::Open,
                Decision::TicketCreated,
                Outcome::Created,
                Some(Effect::OpenTicket),
            ),
            AlertEventKind::Resolved => (
                AlertState::Resolved,
                Decision::ResolvedBeforeRaised,
                Outcome::Resolved,
                None,
            ),
        };
        return Applied {
            alert: Alert {
                alert_uid: ev.uid.clone(),
                state,
                sources: vec![ev.source],
                ticket_id: None,
                ticket_open: effect.is_some(),
                resolve_propagated: false,
                propagation_pending: false,
                facts: ev.facts.clone(),
                enriched: false,
                first_seen_at: ev.at,
                timeline: vec![entry(ev, decision)],
            },
            outcome,
            effect,
            changed: true,
        };
    };

    let mut alert = current.clone();
    let new_source = !alert.sources.contains(&ev.source);
    if new_source {
        alert.sources.push(ev.source);
    }
    let facts_before = alert.facts.clone();
    alert.facts.fill_from(&ev.facts);
    let learned = alert.facts != facts_before;

    let (decision, outcome, effect, always_record) = match (ev.kind, alert.state) {
        (AlertEventKind::Raised, AlertState::Open) => (Decision::Duplicate, Outcome::Duplicate, None, false),
        (AlertEventKind::Raised, AlertState::Resolved) if alert.ticket_id.is_none() => {
            (Decision::LateRaiseIgnored, Outcome::Resolved, None, false)
        }
        (AlertEventKind::Raised, AlertState::Resolved) => (Decision::Duplicate, Outcome::Duplicate, None, false),
        (AlertEventKind::Resolved, AlertState::Open) => {
            alert.state = AlertState::Resolved;
            match alert.ticket_id {
                Some(t) if alert.ticket_open => {
                    alert.ticket_open = false;
                    // Datto resolved it itself: nothing to tell Datto.
                    alert.resolve_propagated = true;
                    alert.propagation_pending = false;
                    (
                        Decision::TicketClosed,
                        Outcome::Resolved,
                        Some(Effect::CloseTicket { ticket_id: t }),
                        true,
                    )
                }
                _ => {
                    if alert.propagation_pending {
                        alert.propagation_pending = false;
                        alert.resolve_propagated = true;
                    }
                    (Decision::AlreadyClosed, Outcome::Resolved, None, true)
                }
            }
        }
        (AlertEventKind::Resolved, AlertState::Resolved) => {
            (Decision::AlreadyResolved, Outcome::Duplicate, None, false)
        }
    };
    let changed = always_record || new_source || learned;
    if changed {
        alert.timeline.push(entry(ev, decision));
    }
    Applied {
        alert,
        outcome,
        effect,
        changed,
    }
}

/// Record that an agent closed the alert's ticket; Datto is then to be told (unless the
/// alert is already resolved there). Returns true when a propagation is needed.
pub fn ticket_closed_by_agent(alert: &mut Alert, at: DateTime<Utc>) -> bool {
    alert.ticket_open = false;
    let needed = alert.state == AlertState::Open && !alert.resolve_propagated;
    alert.propagation_pending = needed;
    alert.timeline.push(TimelineEntry {
        at,
        source: "agent".into(),
        event: "ticket_closed".into(),
        decision: Decision::ClosedByAgent,
    });
    needed
}

/// Record that Datto now knows the alert is resolved (our resolve call succeeded, or it
/// was resolved or unknown there already).
pub fn resolve_propagated(alert: &mut Alert, at: DateTime<Utc>) {
    alert.state = AlertState::Resolved;
    alert.resolve_propagated = true;
    alert.propagation_pending = false;
    alert.timeline.push(TimelineEntry {
        at,
        source: "datto-api".into(),
        event: "resolve".into(),
        decision: Decision::ResolvePropagated,
    });
}

/// What a ticket made from an alert holds, before customer and site are resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTicketDraft {
    pub summary: String,
    pub details: String,
    pub priority: Priority,
    pub asset: Option<String>,
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// Cut to at most `max` characters, marking a cut with an ellipsis.
pub fn truncate_chars(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out = out.trim_end().to_string();
    out.push('…');
    out
}

/// A summary for an alert that carries no message (polled alerts): from its context
/// class and diagnostics.
pub fn summary_from_context(facts: &AlertFacts) -> String {
    let device = facts.device_hostname.as_deref().unwrap_or("a device");
    let ctx = facts.context.as_ref();
    let class = ctx.and_then(|c| c.get("@class")).and_then(|v| v.as_str()).unwrap_or("");
    let field = |k: &str| ctx.and_then(|c| c.get(k));
    let text = match class {
        "perf_resource_usage_ctx" => {
            let kind = field("type").and_then(|v| v.as_str()).unwrap_or("Resource");
            match field("percentage").and_then(|v| v.as_f64()) {
                Some(p) => format!("{kind} usage {p:.1}% on {device}"),
                None => format!("{kind} usage alert on {device}"),
            }
        }
        "perf_disk_usage_ctx" | "disk_usage_ctx" => {
            let disk = field("diskName").and_then(|v| v.as_str()).unwrap_or("a disk");
            format!("Disk usage alert for {disk} on {device}")
        }
        "online_offline_status_ctx" => {
            let st = field("status").and_then(|v| v.as_str()).unwrap_or("status change");
            format!("{device} is {}", st.to_ascii_lowercase())
        }
        "srvc_status_ctx" => {
            let svc = field("serviceName").and_then(|v| v.as_str()).unwrap_or("a service");
            let st = field("status").and_then(|v| v.as_str()).unwrap_or("changed");
            format!("Service {svc} {} on {device}", st.to_ascii_lowercase())
        }
        "antivirus_ctx" => {
            let p = field("productName").and_then(|v| v.as_str()).unwrap_or("Antivirus");
            format!("{p} alert on {device}")
        }
        _ => match facts
            .diagnostics
            .as_deref()
            .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
        {
            Some(first) => format!("{first} ({device})"),
            None => format!("Datto RMM alert on {device}"),
        },
    };
    truncate_chars(&text, SUMMARY_MAX)
}

/// Build the ticket content from what is known about an alert.
pub fn ticket_draft(
    uid: &AlertUid,
    facts: &AlertFacts,
    priorities: &PriorityMap,
) -> Result<AlertTicketDraft, DomainError> {
    let summary = match facts.message.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => truncate_chars(m.lines().next().unwrap_or(m), SUMMARY_MAX),
        None => summary_from_context(facts),
    };
    let mut d = String::new();
    let mut line = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
            d.push_str(&format!("{k}: {v}\n"));
        }
    };
    line("Alert", facts.message.as_deref());
    line("Priority", facts.priority.as_deref());
    let device = match (&facts.device_hostname, &facts.device_uid) {
        (Some(h), Some(u)) => Some(format!("{h} ({u})")),
        (Some(h), None) => Some(h.clone()),
        (None, Some(u)) => Some(u.clone()),
        (None, None) => None,
    };
    line("Device", device.as_deref());
    let site = match (&facts.site_name, &facts.site_uid) {
        (Some(n), Some(u)) => Some(format!("{n} ({u})")),
        (Some(n), None) => Some(n.clone()),
        (None, Some(u)) => Some(u.clone()),
        (None, None) => None,
    };
    line("Site", site.as_deref());
    line("Alert UID", Some(uid.as_str()));
    if let Some(diag) = facts.diagnostics.as_deref().filter(|s| !s.trim().is_empty()) {
        d.push_str(&format!("Diagnostics:\n{}\n", diag.trim_end()));
    }
    if let Some(ctx) = &facts.context {
        d.push_str(&format!("Context: {ctx}\n"));
    }
    for (k, v) in &facts.additional_values {
        let shown = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        d.push_str(&format!("{k}: {shown}\n"));
    }
    Ok(AlertTicketDraft {
        summary,
        details: d,
        priority: priorities.map(facts.priority.as_deref(), Priority::Medium),
        asset: facts.device_hostname.clone().filter(|h| !h.trim().is_empty()),
        custom_fields: validate_custom_fields(facts.additional_values.clone()).map_err(|e| match e {
            DomainError::Validation { field, message } => DomainError::Validation {
                field: field.replacen("custom_fields", "additional_values", 1),
                message,
            },
            other => other,
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UID: &str = "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94";

    fn ev(kind: AlertEventKind, source: AlertSource) -> AlertEvent {
        AlertEvent {
            uid: AlertUid::parse("alert_uid", UID).unwrap(),
            kind,
            source,
            at: Utc::now(),
            facts: AlertFacts {
                message: Some("CPU high".into()),
                ..Default::default()
            },
        }
    }

    fn with_ticket(mut a: Applied) -> Alert {
        a.alert.ticket_id = Some(1042);
        a.alert
    }

    #[test]
    fn a_first_raise_opens_a_ticket_and_repeats_are_duplicates() {
        let first = apply(None, &ev(AlertEventKind::Raised, AlertSource::Webhook));
        assert_eq!(
            (first.outcome, first.effect),
            (Outcome::Created, Some(Effect::OpenTicket))
        );
        let alert = with_ticket(first);
        let again = apply(Some(&alert), &ev(AlertEventKind::Raised, AlertSource::Webhook));
        assert_eq!(
            (again.outcome, again.effect, again.changed),
            (Outcome::Duplicate, None, false)
        );
        let by_mail = apply(Some(&alert), &ev(AlertEventKind::Raised, AlertSource::Email));
        assert_eq!((by_mail.outcome, by_mail.changed), (Outcome::Duplicate, true));
        assert_eq!(by_mail.alert.sources, vec![AlertSource::Webhook, AlertSource::Email]);
    }

    #[test]
    fn resolved_closes_the_open_ticket_without_calling_datto_back() {
        let alert = with_ticket(apply(None, &ev(AlertEventKind::Raised, AlertSource::Webhook)));
        let r = apply(Some(&alert), &ev(AlertEventKind::Resolved, AlertSource::Webhook));
        assert_eq!(r.effect, Some(Effect::CloseTicket { ticket_id: 1042 }));
        assert_eq!(r.alert.state, AlertState::Resolved);
        assert!(r.alert.resolve_propagated && !r.alert.propagation_pending);
        let again = apply(Some(&r.alert), &ev(AlertEventKind::Resolved, AlertSource::Webhook));
        assert_eq!((again.outcome, again.effect), (Outcome::Duplicate, None));
    }

    #[test]
    fn a_raise_after_the_resolve_opens_nothing() {
        let r = apply(None, &ev(AlertEventKind::Resolved, AlertSource::Webhook));
        assert_eq!((r.outcome, r.effect), (Outcome::Resolved, None));
        let late = apply(Some(&r.alert), &ev(AlertEventKind::Raised, AlertSource::Webhook));
        assert_eq!((late.outcome, late.effect), (Outcome::Resolved, None));
        assert_eq!(late.alert.ticket_id, None);
    }

    #[test]
    fn an_agent_close_then_datto_resolve_is_a_no_op_that_ends_propagation() {
        let mut alert = with_ticket(apply(None, &ev(AlertEventKind::Raised, AlertSource::Webhook)));
        assert!(ticket_closed_by_agent(&mut alert, Utc::now()));
        let r = apply(Some(&alert), &ev(AlertEventKind::Resolved, AlertSource::Webhook));
        assert_eq!((r.outcome, r.effect), (Outcome::Resolved, None));
        assert!(r.alert.resolve_propagated && !r.alert.propagation_pending);
    }

    #[test]
    fn the_draft_holds_summary_priority_asset_and_custom_fields() {
        let uid = AlertUid::parse("alert_uid", UID).unwrap();
        let mut facts = AlertFacts {
            message: Some("x".repeat(300)),
            priority: Some("High".into()),
            device_hostname: Some("ACME-DC01".into()),
            site_name: Some("Acme".into()),
            ..Default::default()
        };
        facts
            .additional_values
            .insert("category".into(), serde_json::json!("Monitoring"));
        let d = ticket_draft(&uid, &facts, &PriorityMap::default()).unwrap();
        assert_eq!(d.summary.chars().count(), 200);
        assert_eq!(d.priority, Priority::High);
        assert_eq!(d.asset.as_deref(), Some("ACME-DC01"));
        assert_eq!(d.custom_fields["category"], "Monitoring");
        assert!(d.details.contains("Site: Acme"));
        facts.additional_values.insert("bad".into(), serde_json::json!([1]));
        assert!(matches!(ticket_draft(&uid, &facts, &PriorityMap::default()),
            Err(DomainError::Validation { field, .. }) if field == "additional_values.bad"));
    }

    #[test]
    fn polled_alerts_get_a_summary_from_their_context() {
        let facts = AlertFacts {
            device_hostname: Some("ACME-DC01".into()),
            context: Some(serde_json::json!({"@class": "perf_resource_usage_ctx", "type": "CPU", "percentage": 93.4})),
            ..Default::default()
        };
        assert_eq!(summary_from_context(&facts), "CPU usage 93.4% on ACME-DC01");
        let unknown = AlertFacts {
            diagnostics: Some("\nBackup failed\nmore".into()),
            device_hostname: Some("PC7".into()),
            context: Some(serde_json::json!({"@class": "brand_new_ctx"})),
            ..Default::default()
        };
        assert_eq!(summary_from_context(&unknown), "Backup failed (PC7)");
    }

    fn kind() -> impl Strategy<Value = AlertEventKind> {
        prop_oneof![Just(AlertEventKind::Raised), Just(AlertEventKind::Resolved)]
    }
    fn source() -> impl Strategy<Value = AlertSource> {
        prop_oneof![
            Just(AlertSource::Webhook),
            Just(AlertSource::Email),
            Just(AlertSource::Poll)
        ]
    }

    proptest! {
        /// Whatever order events arrive in, at most one ticket is opened, a ticket is
        /// closed at most once, and nothing is opened after a resolve was seen.
        #[test]
        fn any_event_sequence_opens_at_most_one_ticket(events in proptest::collection::vec((kind(), source()), 1..12)) {
            let mut alert: Option<Alert> = None;
            let (mut opened, mut closed, mut resolved_seen) = (0, 0, false);
            for (k, s) in events {
                let a = apply(alert.as_ref(), &ev(k, s));
                match a.effect {
                    Some(Effect::OpenTicket) => { opened += 1; prop_assert!(!resolved_seen); }
                    Some(Effect::CloseTicket { .. }) => closed += 1,
                    None => {}
                }
                if k == AlertEventKind::Resolved { resolved_seen = true; }
                let mut next = a.alert;
                if a.effect == Some(Effect::OpenTicket) { next.ticket_id = Some(1); }
                alert = Some(next);
            }
            prop_assert!(opened <= 1);
            prop_assert!(closed <= opened);
        }
    }
}
