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

/// A field of [`AlertFacts`] a source may leave unknown and the Datto API may supply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FactField {
    Message,
    Priority,
    DeviceUid,
    DeviceHostname,
    SiteUid,
    SiteName,
}

impl FactField {
    pub const ALL: [FactField; 6] = [
        FactField::Message,
        FactField::Priority,
        FactField::DeviceUid,
        FactField::DeviceHostname,
        FactField::SiteUid,
        FactField::SiteName,
    ];

    /// The webhook payload's name of the field (`alert_priority`, `site_uid`, ...).
    pub fn payload_name(self) -> &'static str {
        match self {
            FactField::Message => "alert_message",
            FactField::Priority => "alert_priority",
            FactField::DeviceUid => "device_uid",
            FactField::DeviceHostname => "device_hostname",
            FactField::SiteUid => "site_uid",
            FactField::SiteName => "site_name",
        }
    }

    /// How a correction names the field.
    pub fn label(self) -> &'static str {
        match self {
            FactField::Message => "summary",
            FactField::Priority => "priority",
            FactField::DeviceUid => "device",
            FactField::DeviceHostname => "device name",
            FactField::SiteUid => "site",
            FactField::SiteName => "site name",
        }
    }
}

/// Why a field is unknown. A literal `[placeholder]` is one Datto did not fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// The source sent Datto's placeholder text unreplaced, e.g. `[site_uid]`.
    Placeholder(String),
    /// The source sent an empty value (or `null`).
    Empty,
    /// The source did not send the field at all.
    Missing,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unknown::Placeholder(p) => write!(f, "the unfilled placeholder {p}"),
            Unknown::Empty => f.write_str("empty"),
            Unknown::Missing => f.write_str("not sent"),
        }
    }
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
    /// Free text the source sent besides its fields (an alert e-mail's body as text),
    /// shown in the ticket's details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Fields a webhook sent that deskbridge does not know (an admin's own additions),
    /// shown in the ticket's details instead of being refused.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub other_fields: serde_json::Map<String, serde_json::Value>,
    /// The fields that were unknown, and why, in the facts the alert's ticket was made
    /// from. Enrichment may correct exactly these; a field not listed here arrived with a
    /// real value and is never overwritten.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub unknown: std::collections::BTreeMap<FactField, Unknown>,
}

impl AlertFacts {
    /// Fill what `self` lacks from `other`. `unknown` keeps `self`'s record: it describes
    /// what the ticket was made from, which a later event does not change.
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
        f(&mut self.body, &other.body);
        if self.context.is_none() {
            self.context.clone_from(&other.context);
        }
        for (k, v) in &other.additional_values {
            self.additional_values.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &other.other_fields {
            self.other_fields.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// The value of a correctable field.
    pub fn get(&self, field: FactField) -> Option<&str> {
        match field {
            FactField::Message => self.message.as_deref(),
            FactField::Priority => self.priority.as_deref(),
            FactField::DeviceUid => self.device_uid.as_deref(),
            FactField::DeviceHostname => self.device_hostname.as_deref(),
            FactField::SiteUid => self.site_uid.as_deref(),
            FactField::SiteName => self.site_name.as_deref(),
        }
    }

    /// The slot of a correctable field.
    pub fn get_mut(&mut self, field: FactField) -> &mut Option<String> {
        match field {
            FactField::Message => &mut self.message,
            FactField::Priority => &mut self.priority,
            FactField::DeviceUid => &mut self.device_uid,
            FactField::DeviceHostname => &mut self.device_hostname,
            FactField::SiteUid => &mut self.site_uid,
            FactField::SiteName => &mut self.site_name,
        }
    }

    /// Record every correctable field that has no value and no reason yet as `Missing`.
    pub fn mark_missing(&mut self) {
        for field in FactField::ALL {
            if self.get(field).is_none() {
                self.unknown.entry(field).or_insert(Unknown::Missing);
            }
        }
    }

    /// True when `field` was unknown when the ticket was made.
    pub fn is_unknown(&self, field: FactField) -> bool {
        self.unknown.contains_key(&field)
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
    /// A noise-control decision (related, recurred, flapping, suppressed, held, routed,
    /// released); the entry's `note` says which and why.
    Noise,
    /// Enrichment filled fields that arrived unknown from the Datto API (the event says
    /// which, from where and what they were).
    FieldsCorrected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub source: String,
    pub event: String,
    pub decision: Decision,
    /// The sentence explaining a noise-control decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
    /// The device noise control counted this alert under when it decided its raise
    /// (`uid:…` or `host:…`). Kept because later events fill in facts (an e-mail names
    /// only the hostname, the webhook adds the device uid) that would name it differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_device: Option<String>,
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
        note: None,
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
        let mut facts = ev.facts.clone();
        if effect.is_some() {
            // What the ticket is made without, for enrichment to correct later.
            facts.mark_missing();
        }
        return Applied {
            alert: Alert {
                alert_uid: ev.uid.clone(),
                state,
                sources: vec![ev.source],
                ticket_id: None,
                ticket_open: effect.is_some(),
                resolve_propagated: false,
                propagation_pending: false,
                facts,
                enriched: false,
                first_seen_at: ev.at,
                timeline: vec![entry(ev, decision)],
                noise_device: None,
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
        note: None,
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
        note: None,
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

/// The longest message body the ticket's details carry (characters).
pub const BODY_MAX: usize = 20_000;

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
/// class and diagnostics (see [`super::alert_context`]).
pub fn summary_from_context(facts: &AlertFacts) -> String {
    let text = super::alert_context::summary(
        facts.context.as_ref(),
        facts.device_hostname.as_deref(),
        facts.diagnostics.as_deref(),
    );
    truncate_chars(&text, SUMMARY_MAX)
}

/// The ticket summary for these facts: the message's first line, else from the context.
pub fn alert_summary(facts: &AlertFacts) -> String {
    match facts.message.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => truncate_chars(m.lines().next().unwrap_or(m), SUMMARY_MAX),
        None => summary_from_context(facts),
    }
}

/// Build the ticket content from what is known about an alert.
pub fn ticket_draft(
    uid: &AlertUid,
    facts: &AlertFacts,
    priorities: &PriorityMap,
) -> Result<AlertTicketDraft, DomainError> {
    let summary = alert_summary(facts);
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
    if !facts.other_fields.is_empty() {
        d.push_str("Other fields sent:\n");
        for (k, v) in &facts.other_fields {
            let shown = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            d.push_str(&format!("  {k}: {shown}\n"));
        }
    }
    if let Some(body) = facts.body.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        d.push_str(&format!("Message body:\n{}\n", truncate_chars(body, BODY_MAX)));
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

/// A Datto device as enrichment needs it (`GET /device/{uid}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    pub uid: String,
    pub hostname: Option<String>,
    pub site_uid: Option<String>,
    pub site_name: Option<String>,
}

/// Where a corrected value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionSource {
    /// `GET /alert/{uid}`: priority and `alertSourceInfo`.
    DattoAlert,
    /// `GET /device/{uid}`: hostname and site.
    DattoDevice,
    /// The summary built from the alert's `alertContext` and diagnostics in the API.
    DattoAlertContext,
}

impl std::fmt::Display for CorrectionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CorrectionSource::DattoAlert => "the alert in the Datto API",
            CorrectionSource::DattoDevice => "the device in the Datto API",
            CorrectionSource::DattoAlertContext => "the alert's context in the Datto API",
        })
    }
}

/// One field enrichment corrected: the timeline says what, from where, and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    /// [`FactField::Message`] stands for the summary (the API has no message text).
    pub field: FactField,
    pub value: String,
    pub from: CorrectionSource,
    pub was: Unknown,
}

impl std::fmt::Display for Correction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {:?} from {}, was unknown ({})",
            self.field.label(),
            self.value,
            self.from,
            self.was
        )
    }
}

/// The result of [`correct_unknown`].
#[derive(Debug, Clone, PartialEq)]
pub struct Corrected {
    /// The alert's facts with the corrections applied (corrected fields leave `unknown`;
    /// diagnostics and context are added when they were absent).
    pub facts: AlertFacts,
    /// What changed, in field order; empty when the API knew nothing new.
    pub corrections: Vec<Correction>,
    /// The ticket's new summary, when the message was unknown and the API's context gives
    /// a different one.
    pub summary: Option<String>,
}

/// A value usable as a correction: not blank, not a placeholder, not Datto's `Unknown`.
fn known_value(v: Option<&str>) -> Option<String> {
    let v = v?.trim();
    (!v.is_empty() && !super::datto::is_placeholder(v)).then(|| v.to_string())
}

/// Decide what enrichment corrects: each field that was unknown when the ticket was made
/// (see [`AlertFacts::unknown`]) and that the Datto API knows takes the API's value; every
/// other field keeps what it arrived with. A name (device, site) is only taken from a
/// record whose uid agrees with the uid the alert already has. When the message was
/// unknown, the summary is rebuilt from the API's context and diagnostics. Pure.
pub fn correct_unknown(alert: &AlertFacts, api: &AlertFacts, device: Option<&DeviceFacts>) -> Corrected {
    let mut facts = alert.clone();
    let mut corrections = Vec::new();
    let mut correct = |facts: &mut AlertFacts, field: FactField, value: Option<String>, from: CorrectionSource| {
        let Some(was) = facts.unknown.get(&field).cloned() else {
            return;
        };
        if let Some(value) = value {
            *facts.get_mut(field) = Some(value.clone());
            facts.unknown.remove(&field);
            corrections.push(Correction {
                field,
                value,
                from,
                was,
            });
        }
    };

    let priority = known_value(api.priority.as_deref()).filter(|p| !p.eq_ignore_ascii_case("unknown"));
    correct(&mut facts, FactField::Priority, priority, CorrectionSource::DattoAlert);

    correct(
        &mut facts,
        FactField::DeviceUid,
        known_value(api.device_uid.as_deref()),
        CorrectionSource::DattoAlert,
    );
    let same = |a: Option<&str>, b: Option<&str>| match (a, b) {
        (Some(a), Some(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
        _ => false,
    };
    let device = device.filter(|d| same(Some(&d.uid), facts.device_uid.as_deref()));
    let api_device_agrees = facts.device_uid.is_none() || same(api.device_uid.as_deref(), facts.device_uid.as_deref());
    let (hostname, from) = match device.and_then(|d| known_value(d.hostname.as_deref())) {
        Some(h) => (Some(h), CorrectionSource::DattoDevice),
        None => (
            known_value(api.device_hostname.as_deref()).filter(|_| api_device_agrees),
            CorrectionSource::DattoAlert,
        ),
    };
    correct(&mut facts, FactField::DeviceHostname, hostname, from);

    let (site_uid, from) = match known_value(api.site_uid.as_deref()) {
        Some(s) => (Some(s), CorrectionSource::DattoAlert),
        None => (
            device.and_then(|d| known_value(d.site_uid.as_deref())),
            CorrectionSource::DattoDevice,
        ),
    };
    correct(&mut facts, FactField::SiteUid, site_uid, from);
    let site_name = if facts.site_uid.is_none() || same(api.site_uid.as_deref(), facts.site_uid.as_deref()) {
        known_value(api.site_name.as_deref()).map(|n| (n, CorrectionSource::DattoAlert))
    } else {
        None
    }
    .or_else(|| {
        device
            .filter(|d| facts.site_uid.is_none() || same(d.site_uid.as_deref(), facts.site_uid.as_deref()))
            .and_then(|d| known_value(d.site_name.as_deref()))
            .map(|n| (n, CorrectionSource::DattoDevice))
    });
    match site_name {
        Some((n, from)) => correct(&mut facts, FactField::SiteName, Some(n), from),
        None => correct(&mut facts, FactField::SiteName, None, CorrectionSource::DattoAlert),
    }

    if facts.diagnostics.is_none() {
        facts.diagnostics.clone_from(&api.diagnostics);
    }
    if facts.context.is_none() {
        facts.context.clone_from(&api.context);
    }
    let mut summary = None;
    if facts.message.is_none() {
        let before = alert_summary(alert);
        let after = alert_summary(&facts);
        if after != before {
            if let Some(was) = facts.unknown.get(&FactField::Message).cloned() {
                corrections.push(Correction {
                    field: FactField::Message,
                    value: after.clone(),
                    from: CorrectionSource::DattoAlertContext,
                    was,
                });
            }
            summary = Some(after);
        }
    }
    Corrected {
        facts,
        corrections,
        summary,
    }
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

    fn unfilled_webhook_facts() -> AlertFacts {
        // What a webhook with `[alert_priority]`, `[site_uid]` and no site name gives.
        AlertFacts {
            message: Some("Backup job 'Nightly-Docs' failed".into()),
            device_uid: Some("91b3d5f7-a2c4-4e6a-8b0d-c1e3f5a7b9d2".into()),
            device_hostname: Some("BIRCH-PC07".into()),
            unknown: [
                (FactField::Priority, Unknown::Placeholder("[alert_priority]".into())),
                (FactField::SiteUid, Unknown::Placeholder("[site_uid]".into())),
                (FactField::SiteName, Unknown::Missing),
            ]
            .into(),
            ..Default::default()
        }
    }

    fn api_facts() -> AlertFacts {
        AlertFacts {
            priority: Some("Low".into()),
            device_uid: Some("91b3d5f7-a2c4-4e6a-8b0d-c1e3f5a7b9d2".into()),
            device_hostname: Some("BIRCH-PC07".into()),
            site_uid: Some("7a3c5e91-2b4d-4f68-9a1c-3e5d7f9b2c40".into()),
            site_name: Some("Birch & Co Accountants".into()),
            diagnostics: Some("Backup job 'Nightly-Docs' last result: Failed".into()),
            context: Some(serde_json::json!({"@class": "comp_script_ctx", "samples": {"Result": "Failed"}})),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_ticket_records_every_field_it_was_made_without() {
        let mut e = ev(AlertEventKind::Raised, AlertSource::Email);
        e.facts
            .unknown
            .insert(FactField::SiteUid, Unknown::Placeholder("[site_uid]".into()));
        let a = apply(None, &e);
        let unknown: Vec<_> = a.alert.facts.unknown.keys().copied().collect();
        assert_eq!(
            unknown,
            [
                FactField::Priority,
                FactField::DeviceUid,
                FactField::DeviceHostname,
                FactField::SiteUid,
                FactField::SiteName
            ]
        );
        assert_eq!(
            a.alert.facts.unknown[&FactField::SiteUid],
            Unknown::Placeholder("[site_uid]".into()),
            "the source's reason is kept"
        );
        // A later event fills values but does not change what the ticket was made from.
        let mut later = ev(AlertEventKind::Raised, AlertSource::Webhook);
        later.facts.priority = Some("High".into());
        let again = apply(Some(&with_ticket(a)), &later);
        assert_eq!(again.alert.facts.priority.as_deref(), Some("High"));
        assert!(again.alert.facts.is_unknown(FactField::Priority));
        // The record survives the store's JSON.
        let json = serde_json::to_string(&again.alert).unwrap();
        let back: Alert = serde_json::from_str(&json).unwrap();
        assert_eq!(back.facts.unknown, again.alert.facts.unknown);
        assert!(json.contains(r#""site_uid":{"placeholder":"[site_uid]"}"#), "{json}");
    }

    #[test]
    fn enrichment_corrects_exactly_the_unknown_fields_and_says_from_where() {
        let received = unfilled_webhook_facts();
        let mut api = api_facts();
        api.device_hostname = Some("SOMETHING-ELSE".into());
        let c = correct_unknown(&received, &api, None);
        assert_eq!(c.facts.priority.as_deref(), Some("Low"));
        assert_eq!(
            c.facts.site_uid.as_deref(),
            Some("7a3c5e91-2b4d-4f68-9a1c-3e5d7f9b2c40")
        );
        assert_eq!(c.facts.site_name.as_deref(), Some("Birch & Co Accountants"));
        assert_eq!(
            c.facts.device_hostname.as_deref(),
            Some("BIRCH-PC07"),
            "real value kept"
        );
        assert_eq!(c.facts.message, received.message, "real message kept");
        assert!(c.facts.unknown.is_empty());
        assert_eq!(c.summary, None, "the message was known");
        let lines: Vec<String> = c.corrections.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "priority: \"Low\" from the alert in the Datto API, was unknown (the unfilled placeholder [alert_priority])",
                "site: \"7a3c5e91-2b4d-4f68-9a1c-3e5d7f9b2c40\" from the alert in the Datto API, was unknown (the unfilled placeholder [site_uid])",
                "site name: \"Birch & Co Accountants\" from the alert in the Datto API, was unknown (not sent)",
            ]
        );
        // Applying the result again changes nothing.
        let twice = correct_unknown(&c.facts, &api, None);
        assert!(twice.corrections.is_empty());
        assert_eq!(twice.facts, c.facts);
    }

    #[test]
    fn a_missing_message_gets_the_summary_from_the_api_context_and_the_device_its_name() {
        let mut received = AlertFacts {
            device_uid: Some("91b3d5f7-a2c4-4e6a-8b0d-c1e3f5a7b9d2".into()),
            ..Default::default()
        };
        received.mark_missing();
        assert_eq!(alert_summary(&received), "Datto RMM alert on a device");
        let mut api = api_facts();
        api.device_hostname = None;
        api.priority = Some("Unknown".into());
        let device = DeviceFacts {
            uid: "91B3D5F7-A2C4-4E6A-8B0D-C1E3F5A7B9D2".into(),
            hostname: Some("BIRCH-PC07".into()),
            site_uid: Some("7a3c5e91-2b4d-4f68-9a1c-3e5d7f9b2c40".into()),
            site_name: Some("Birch & Co".into()),
        };
        let c = correct_unknown(&received, &api, Some(&device));
        assert_eq!(c.facts.priority, None, "Datto's own `Unknown` corrects nothing");
        assert!(c.facts.is_unknown(FactField::Priority));
        assert_eq!(c.facts.device_hostname.as_deref(), Some("BIRCH-PC07"));
        assert_eq!(
            c.facts.site_name.as_deref(),
            Some("Birch & Co Accountants"),
            "the alert's site name first"
        );
        assert_eq!(
            c.summary.as_deref(),
            Some("Backup job 'Nightly-Docs' last result: Failed (BIRCH-PC07)")
        );
        let fields: Vec<(FactField, CorrectionSource)> = c.corrections.iter().map(|c| (c.field, c.from)).collect();
        assert_eq!(
            fields,
            [
                (FactField::DeviceHostname, CorrectionSource::DattoDevice),
                (FactField::SiteUid, CorrectionSource::DattoAlert),
                (FactField::SiteName, CorrectionSource::DattoAlert),
                (FactField::Message, CorrectionSource::DattoAlertContext),
            ]
        );
        assert!(
            c.facts.is_unknown(FactField::Message),
            "the message itself is still unknown"
        );
    }

    #[test]
    fn names_from_a_record_about_another_device_or_site_are_not_taken() {
        let mut received = AlertFacts {
            device_uid: Some("91b3d5f7-a2c4-4e6a-8b0d-c1e3f5a7b9d2".into()),
            site_uid: Some("0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f".into()),
            message: Some("x".into()),
            priority: Some("High".into()),
            ..Default::default()
        };
        received.mark_missing();
        let api = AlertFacts {
            device_uid: Some("4c6e8a0b-1d3f-4a5c-9e7b-2f4a6c8e0d13".into()),
            device_hostname: Some("BIRCH-FS01".into()),
            site_uid: Some("7a3c5e91-2b4d-4f68-9a1c-3e5d7f9b2c40".into()),
            site_name: Some("Birch & Co Accountants".into()),
            priority: Some("Low".into()),
            ..Default::default()
        };
        let other_device = DeviceFacts {
            uid: "4c6e8a0b-1d3f-4a5c-9e7b-2f4a6c8e0d13".into(),
            hostname: Some("BIRCH-FS01".into()),
            ..Default::default()
        };
        let c = correct_unknown(&received, &api, Some(&other_device));
        assert!(c.corrections.is_empty(), "{:?}", c.corrections);
        assert_eq!(c.facts.priority.as_deref(), Some("High"));
        assert_eq!(c.facts.device_hostname, None);
        assert_eq!(c.facts.site_name, None);
    }

    #[test]
    fn details_carry_the_mail_body_and_the_fields_nobody_defined() {
        let uid = AlertUid::parse("alert_uid", UID).unwrap();
        let mut facts = AlertFacts {
            message: Some("CPU high".into()),
            body: Some("Datto RMM alert\n\nPriority: High\n".into()),
            ..Default::default()
        };
        facts.other_fields.insert("siteId".into(), serde_json::json!(418207));
        let d = ticket_draft(&uid, &facts, &PriorityMap::default()).unwrap();
        assert!(
            d.details.contains("Other fields sent:\n  siteId: 418207\n"),
            "{}",
            d.details
        );
        assert!(
            d.details.contains("Message body:\nDatto RMM alert\n\nPriority: High\n"),
            "{}",
            d.details
        );
        assert!(d.custom_fields.is_empty(), "other fields are not custom fields");
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
