//! Noise control inside the one intake path: a raised or resolved alert meets the
//! `domain::noise` decisions, and their ticket effects become writes in the alert's own
//! transaction (with the device's noise state on its version). Also the settling of held
//! and flapping devices that the scheduled sync drives.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::alerts::{Alert, AlertEvent, AlertSource, AlertState, AlertUid, Decision, TimelineEntry};
use crate::domain::datto::{DattoSettings, SiteMapping};
use crate::domain::noise::{
    decide_raise, decide_resolve, routed_ticket, settle, DecisionLine, DeviceKey, DeviceNoise, RaiseDecision,
    RaisedAlert, Recorded, ResolveDecision, RuleDecision, TicketDefaults, TicketEffect,
};
use crate::domain::tickets::{Action, ActionKind, CloseOrigin, Ticket, TicketStatus};
use crate::error::{Error, Result};
use crate::ports::{StoreError, WriteOp};
use crate::store::{NoiseConfig, Store};

/// What noise control adds to an alert decision's transaction.
pub(crate) struct NoiseWrite {
    pub ops: Vec<WriteOp>,
    /// The request-log outcome and the answer's `decision`.
    pub line: DecisionLine,
    /// The ticket the alert is on afterwards, if any.
    pub ticket_id: Option<u64>,
    /// True when the decision opened a ticket for this alert (enrichment is asked for).
    pub opened: bool,
    /// A decision that says no more than before noise control (`created`, `resolved`).
    pub plain: bool,
}

/// The device an alert counts under.
pub(crate) fn device_of(alert: &Alert) -> DeviceKey {
    DeviceKey::of(&alert.facts).unwrap_or_else(DeviceKey::unknown)
}

fn source_word(s: AlertSource) -> &'static str {
    match s {
        AlertSource::Webhook => "webhook",
        AlertSource::Email => "e-mail",
        AlertSource::Poll => "poll",
    }
}

/// The customer and site an alert's ticket goes to (the mapping, or the fallback site).
pub(crate) async fn mapping_for(store: &Store, alert: &Alert, settings: &DattoSettings) -> Result<SiteMapping> {
    match alert.facts.site_uid.as_deref() {
        Some(site_uid) => {
            store
                .site_for_datto(site_uid, alert.facts.site_name.as_deref(), settings)
                .await
        }
        None => store.fallback_alert_site(settings).await,
    }
}

/// The tickets a decision touches, loaded once, and the actions it adds.
struct TicketChanges<'a> {
    store: &'a Store,
    /// id → (ticket, version read; `None` for a ticket this decision creates).
    tickets: BTreeMap<u64, (Ticket, Option<u64>)>,
    actions: Vec<(u64, Action)>,
}

/// What opening a ticket needs besides the effect.
struct Opening<'a> {
    alert: &'a Alert,
    source: AlertSource,
    mapping: &'a SiteMapping,
    settings: &'a DattoSettings,
    default_type: Option<u64>,
    device: &'a DeviceKey,
}

impl<'a> TicketChanges<'a> {
    fn new(store: &'a Store) -> Self {
        TicketChanges {
            store,
            tickets: BTreeMap::new(),
            actions: Vec::new(),
        }
    }

    async fn ticket(&mut self, id: u64) -> Result<&mut Ticket> {
        if !self.tickets.contains_key(&id) {
            let (t, v) = self.store.ticket_head(id).await?;
            self.tickets.insert(id, (t, Some(v)));
        }
        Ok(&mut self.tickets.get_mut(&id).expect("inserted").0)
    }

    async fn action(&mut self, ticket_id: u64, kind: ActionKind, note: String) -> Result<()> {
        let (id, at) = self.store.new_action_stamp().await?;
        self.actions.push((
            ticket_id,
            Action {
                id,
                at,
                kind,
                agent_id: None,
                note,
            },
        ));
        Ok(())
    }

    async fn apply(&mut self, effects: &[TicketEffect], opening: Option<&Opening<'_>>) -> Result<()> {
        for e in effects {
            match e {
                TicketEffect::Open {
                    ticket_id,
                    alert_uid,
                    parent_id,
                    rule,
                    recurrences,
                    flapping,
                } => {
                    let o = opening.ok_or_else(|| {
                        Error::Store(StoreError::Unavailable("a ticket opened without its alert".into()))
                    })?;
                    let t = self.new_ticket(o, *ticket_id, alert_uid, rule).await?;
                    let mut t = t;
                    t.noise.parent_id = *parent_id;
                    t.noise.recurrences = *recurrences;
                    t.noise.flapping = *flapping;
                    if let Some(p) = parent_id {
                        let child = *ticket_id;
                        self.action(
                            *p,
                            ActionKind::System,
                            format!("Recurred: ticket {child} opened as its child."),
                        )
                        .await?;
                    }
                    self.tickets.insert(*ticket_id, (t, None));
                }
                TicketEffect::Reopen { ticket_id, note } => {
                    let (id, now) = self.store.new_action_stamp().await?;
                    let t = self.ticket(*ticket_id).await?;
                    if !t.is_open() {
                        let a = t.reopen(id, None, note, now)?;
                        self.actions.push((*ticket_id, a));
                    }
                }
                TicketEffect::AddAlert {
                    ticket_id,
                    alert_uid,
                    note,
                } => {
                    let t = self.ticket(*ticket_id).await?;
                    push_uid(t, alert_uid);
                    self.action(*ticket_id, ActionKind::Alert, note.clone()).await?;
                }
                TicketEffect::Note { ticket_id, note } => {
                    self.ticket(*ticket_id).await?;
                    self.action(*ticket_id, ActionKind::System, note.clone()).await?;
                }
                TicketEffect::Close { ticket_id, note } => {
                    let (id, now) = self.store.new_action_stamp().await?;
                    let t = self.ticket(*ticket_id).await?;
                    if t.is_open() {
                        // A ticket of one alert closes as it always did.
                        let note = if t.noise.alert_uids.len() > 1 {
                            note.as_str()
                        } else {
                            ""
                        };
                        let a = t.close(id, None, note, CloseOrigin::Datto, now)?;
                        self.actions.push((*ticket_id, a));
                    }
                }
                TicketEffect::SetRecurrences { ticket_id, count } => {
                    self.ticket(*ticket_id).await?.noise.recurrences = *count;
                }
                TicketEffect::SetFlapping { ticket_id, flapping } => {
                    self.ticket(*ticket_id).await?.noise.flapping = *flapping;
                }
                // Only an agent's close asks Datto; that path is `close_ticket_by_agent`.
                TicketEffect::ResolveInDatto { .. } => {}
            }
        }
        Ok(())
    }

    async fn new_ticket(&mut self, o: &Opening<'_>, id: u64, uid: &AlertUid, rule: &RuleDecision) -> Result<Ticket> {
        let defaults = TicketDefaults {
            default_ticket_type_id: o.default_type,
            priorities: &o.settings.priority_map,
        };
        let routed = routed_ticket(uid, &o.alert.facts, rule, defaults)?.ok_or_else(|| {
            Error::Store(StoreError::Unavailable(
                "a suppressed alert cannot open a ticket".into(),
            ))
        })?;
        let (action_id, now) = self.store.new_action_stamp().await?;
        let note = format!(
            "Datto RMM alert raised (via {}): {}",
            source_word(o.source),
            o.alert.facts.message.as_deref().unwrap_or(&routed.summary)
        );
        Ok(Ticket {
            id,
            summary: routed.summary,
            details: routed.details,
            status: TicketStatus::Open,
            customer_id: o.mapping.customer_id,
            site_id: o.mapping.site_id,
            user_id: None,
            ticket_type_id: routed.ticket_type_id,
            priority: routed.priority,
            alert_uid: Some(uid.to_string()),
            asset: routed.asset,
            custom_fields: routed.custom_fields,
            team_id: routed.team_id,
            noise: crate::domain::tickets::AlertTicketNoise {
                alert_uids: vec![uid.to_string()],
                device: Some(o.device.as_str().to_string()),
                ..Default::default()
            },
            created_at: now,
            closed_at: None,
            close_origin: None,
            actions: vec![Action {
                id: action_id,
                at: now,
                kind: ActionKind::Alert,
                agent_id: None,
                note,
            }],
        })
    }

    fn into_ops(self) -> Vec<WriteOp> {
        let mut ops = Vec::new();
        for (id, (t, version)) in &self.tickets {
            match version {
                None => ops.extend(self.store.ticket_insert_ops(t)),
                Some(v) => ops.push(Store::ticket_put(t, *v)),
            }
            let _ = id;
        }
        for (ticket_id, a) in &self.actions {
            ops.push(Store::action_put(*ticket_id, a));
        }
        ops
    }
}

fn push_uid(t: &mut Ticket, uid: &AlertUid) {
    if t.noise.alert_uids.is_empty() {
        if let Some(first) = &t.alert_uid {
            t.noise.alert_uids.push(first.clone());
        }
    }
    if !t.noise.alert_uids.iter().any(|u| u == uid.as_str()) {
        t.noise.alert_uids.push(uid.to_string());
    }
}

fn noise_entry(at: DateTime<Utc>, event: &str, line: &DecisionLine) -> TimelineEntry {
    TimelineEntry {
        at,
        source: "noise".into(),
        event: event.into(),
        decision: Decision::Noise,
        note: Some(line.sentence.clone()),
    }
}

/// Lines for alerts other than the deciding one: written onto their timelines.
async fn other_lines(
    store: &Store,
    deciding: &AlertUid,
    lines: &[(AlertUid, DecisionLine)],
    at: DateTime<Utc>,
    ops: &mut Vec<WriteOp>,
) -> Result<()> {
    let mut by_alert: BTreeMap<String, Vec<&DecisionLine>> = BTreeMap::new();
    for (uid, line) in lines.iter().filter(|(u, _)| u != deciding) {
        by_alert.entry(uid.to_string()).or_default().push(line);
    }
    for (uid, lines) in by_alert {
        let Ok(uid) = AlertUid::parse("alert_uid", &uid) else {
            continue;
        };
        if let Some((mut a, v)) = store.alert(&uid).await? {
            for l in lines {
                a.timeline.push(noise_entry(at, "time", l));
            }
            ops.push(Store::alert_put(&a, Some(v)));
        }
    }
    Ok(())
}

/// The type a ticket gets when no rule sets one: the Datto setting, else the desk default.
async fn default_type(store: &Store, settings: &DattoSettings) -> Result<Option<u64>> {
    Ok(match settings.default_ticket_type_id {
        Some(t) => Some(t),
        None => store.default_ticket_type().await?.map(|t| t.id),
    })
}

/// A new alert that `alerts::apply` would open a ticket for: decide relate, recur, flap,
/// hold, route or suppress. `alert` is the alert about to be stored; its ticket and
/// timeline are set here.
pub(crate) async fn on_raise(
    store: &Store,
    settings: &DattoSettings,
    config: &NoiseConfig,
    ev: &AlertEvent,
    alert: &mut Alert,
) -> Result<NoiseWrite> {
    let mapping = mapping_for(store, alert, settings).await?;
    let device = device_of(alert);
    let (state, version) = store.device_noise(&device).await?;
    let default_type = default_type(store, settings).await?;
    let mut changes = TicketChanges::new(store);
    let facts = alert.facts.clone();
    let raised = RaisedAlert {
        uid: &ev.uid,
        at: ev.at,
        facts: &facts,
        customer_id: Some(mapping.customer_id),
        site_id: Some(mapping.site_id),
        released: false,
    };
    let (rec, opened, plain) = decide_one(store, config, &state, &raised).await?;
    let opening = Opening {
        alert,
        source: ev.source,
        mapping: &mapping,
        settings,
        default_type,
        device: &device,
    };
    changes.apply(&rec.effects, Some(&opening)).await?;
    let ticket_id = ticket_of(&rec, &ev.uid);
    let mut ops = vec![Store::device_noise_put(&rec.state, version)];
    other_lines(store, &ev.uid, &rec.other_lines, ev.at, &mut ops).await?;
    ops.extend(changes.into_ops());
    alert.ticket_id = ticket_id;
    alert.ticket_open = ticket_id.is_some();
    if let Some(last) = alert.timeline.last_mut() {
        if !plain {
            last.decision = Decision::Noise;
        }
        last.note = Some(rec.line.sentence.clone());
    }
    Ok(NoiseWrite {
        ops,
        line: rec.line,
        ticket_id,
        opened,
        plain,
    })
}

/// Decide one raise against `state`: `(recorded, opened a ticket, plain new ticket)`.
async fn decide_one(
    store: &Store,
    config: &NoiseConfig,
    state: &DeviceNoise,
    raised: &RaisedAlert<'_>,
) -> Result<(Recorded, bool, bool)> {
    let plan = decide_raise(state, raised, &config.policy());
    let number = if plan.opens_ticket() {
        Some(store.next_id("ticket").await?)
    } else {
        None
    };
    let plain = matches!(
        plan.decision,
        RaiseDecision::NewTicket {
            rule: RuleDecision::NoMatch
        }
    ) && !plan.starts_flapping;
    let rec = plan.record(raised, number, &config.settings)?;
    Ok((rec, number.is_some(), plain))
}

/// The ticket the decision put `uid` on.
fn ticket_of(rec: &Recorded, uid: &AlertUid) -> Option<u64> {
    rec.effects.iter().find_map(|e| match e {
        TicketEffect::Open {
            ticket_id, alert_uid, ..
        }
        | TicketEffect::AddAlert {
            ticket_id, alert_uid, ..
        } if alert_uid == uid => Some(*ticket_id),
        _ => None,
    })
}

/// Datto resolved an alert that was open: when noise control tracks it, the ticket closes
/// only once all its alerts are resolved (and it is not held). `None`: not tracked, the
/// caller closes the alert's own ticket as before.
pub(crate) async fn on_resolve(
    store: &Store,
    config: &NoiseConfig,
    ev: &AlertEvent,
    alert: &mut Alert,
) -> Result<Option<NoiseWrite>> {
    let device = device_of(alert);
    let (state, version) = store.device_noise(&device).await?;
    if version == 0 {
        return Ok(None);
    }
    let r = decide_resolve(&state, &ev.uid, ev.at, &config.settings);
    if r.decision == ResolveDecision::NotTracked {
        return Ok(None);
    }
    let mut changes = TicketChanges::new(store);
    changes.apply(&r.recorded.effects, None).await?;
    let mut ops = vec![Store::device_noise_put(&r.recorded.state, version)];
    other_lines(store, &ev.uid, &r.recorded.other_lines, ev.at, &mut ops).await?;
    let ticket_id = alert.ticket_id;
    let still_open = match ticket_id {
        Some(t) => match changes.tickets.get(&t) {
            Some((ticket, _)) => ticket.is_open(),
            None => r.recorded.state.ticket(t).is_some_and(|t| t.open),
        },
        None => false,
    };
    ops.extend(changes.into_ops());
    alert.ticket_open = still_open;
    if let Some(last) = alert.timeline.last_mut() {
        if !matches!(r.decision, ResolveDecision::Close { .. }) {
            last.decision = match r.decision {
                ResolveDecision::AlreadyClosed { .. } => Decision::AlreadyClosed,
                _ => Decision::Noise,
            };
        }
        last.note = Some(r.recorded.line.sentence.clone());
    }
    Ok(Some(NoiseWrite {
        ops,
        line: r.recorded.line,
        ticket_id,
        opened: false,
        plain: matches!(r.decision, ResolveDecision::Close { .. }),
    }))
}

/// What settling changed, for the sync's summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct SettleCount {
    pub devices: usize,
    pub released: usize,
    pub tickets_opened: usize,
}

/// Let time pass for every device that time can change (the scheduled sync calls this):
/// flapping holds end, held alerts whose maintenance window ended are decided again (or,
/// by the setting, stay without a ticket). One transaction per device.
pub async fn settle_devices(store: &Store, settings: &DattoSettings, now: DateTime<Utc>) -> Result<SettleCount> {
    let config = store.noise_config().await?;
    let mut count = SettleCount::default();
    for device in store.unsettled_devices().await? {
        for attempt in 0.. {
            match settle_device(store, settings, &config, &device, now, &mut count).await {
                Err(Error::Store(StoreError::ConditionFailed { .. })) if attempt < 8 => continue,
                other => {
                    other?;
                    break;
                }
            }
        }
    }
    Ok(count)
}

async fn settle_device(
    store: &Store,
    settings: &DattoSettings,
    config: &NoiseConfig,
    device: &DeviceKey,
    now: DateTime<Utc>,
    count: &mut SettleCount,
) -> Result<()> {
    let (state, version) = store.device_noise(device).await?;
    let settled = settle(&state, now, &config.policy());
    if settled.state == state {
        return Ok(());
    }
    let mut changes = TicketChanges::new(store);
    changes.apply(&settled.effects, None).await?;
    let mut lines = settled.lines.clone();
    let mut alerts: BTreeMap<String, (Alert, u64)> = BTreeMap::new();
    let mut current = settled.state.clone();
    let default_type = default_type(store, settings).await?;
    let mut opened = 0;
    for uid in &settled.release {
        let Some((mut alert, v)) = store.alert(uid).await? else {
            continue;
        };
        if alert.state != AlertState::Open || alert.ticket_id.is_some() {
            continue;
        }
        let mapping = mapping_for(store, &alert, settings).await?;
        let facts = alert.facts.clone();
        let raised = RaisedAlert {
            uid,
            at: now,
            facts: &facts,
            customer_id: Some(mapping.customer_id),
            site_id: Some(mapping.site_id),
            released: true,
        };
        let (rec, did_open, _) = decide_one(store, config, &current, &raised).await?;
        let source = alert.sources.first().copied().unwrap_or(AlertSource::Poll);
        let opening = Opening {
            alert: &alert,
            source,
            mapping: &mapping,
            settings,
            default_type,
            device,
        };
        changes.apply(&rec.effects, Some(&opening)).await?;
        let ticket_id = ticket_of(&rec, uid);
        alert.ticket_id = ticket_id;
        alert.ticket_open = ticket_id.is_some();
        lines.push((uid.clone(), rec.line.clone()));
        lines.extend(rec.other_lines.iter().cloned());
        current = rec.state;
        opened += usize::from(did_open);
        alerts.insert(uid.to_string(), (alert, v));
        count.released += 1;
    }
    let mut ops = vec![Store::device_noise_put(&current, version)];
    for (uid, line) in &lines {
        let entry = noise_entry(now, "time", line);
        match alerts.get_mut(uid.as_str()) {
            Some((a, _)) => a.timeline.push(entry),
            None => {
                if let Some((a, v)) = store.alert(uid).await? {
                    alerts.insert(uid.to_string(), (a, v));
                    alerts.get_mut(uid.as_str()).expect("inserted").0.timeline.push(entry);
                }
            }
        }
    }
    for (a, v) in alerts.values() {
        ops.push(Store::alert_put(a, Some(*v)));
    }
    ops.extend(changes.into_ops());
    store.records().write(ops).await?;
    count.devices += 1;
    count.tickets_opened += opened;
    Ok(())
}
