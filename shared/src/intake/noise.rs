//! Noise control inside the one intake path: a raised or resolved alert meets the
//! `domain::noise` decisions, and their ticket effects become writes in the alert's own
//! transaction (with the device's noise state on its version), the ticket and action
//! numbers taken in that write. Also the settling of held and flapping devices that the
//! scheduled sync drives.
//!
//! A decision's writes are composed by a pure function of what was read and of the first
//! ticket and action numbers the write took ([`Numbered`]): a dry run with stand-in numbers
//! says which records to read and how many numbers to take, and `write_numbered` calls the
//! same function with the real ones. A lost race therefore leaves a gap in the numbers,
//! never a second ticket.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::alerts::{Alert, AlertEvent, AlertSource, AlertState, AlertUid, Decision, TimelineEntry};
use crate::domain::datto::{DattoSettings, PriorityMap, SiteMapping};
use crate::domain::noise::{
    decide_raise, decide_resolve, routed_ticket, settle, DecisionLine, DeviceKey, RaiseDecision, RaisedAlert, Recorded,
    ResolveDecision, RuleDecision, TicketDefaults, TicketEffect,
};
use crate::domain::tickets::{Action, ActionKind, AlertTicketNoise, CloseOrigin, Ticket, TicketStatus};
use crate::domain::DomainError;
use crate::error::{Error, Result};
use crate::ports::{StoreError, WriteOp};
use crate::store::{NoiseConfig, Store};

/// The first ticket and action number of a dry run: far above any real number, so a
/// ticket the dry run opens is never taken for a stored one.
const DRY_RUN_FIRST: u64 = 1 << 52;

/// The ticket and action numbers a decision's writes use, handed out in order from the
/// first of each that the write took.
struct Numbers {
    first_ticket: u64,
    first_action: u64,
    tickets: u64,
    actions: u64,
}

impl Numbers {
    fn from(first_ticket: u64, first_action: u64) -> Numbers {
        Numbers {
            first_ticket,
            first_action,
            tickets: 0,
            actions: 0,
        }
    }

    fn ticket(&mut self) -> u64 {
        self.tickets += 1;
        self.first_ticket + self.tickets - 1
    }

    fn action(&mut self) -> u64 {
        self.actions += 1;
        self.first_action + self.actions - 1
    }
}

/// What a decision's writes read besides the device's state: the stored tickets it
/// changes and the other alerts whose timelines get a line (`None`: not stored).
#[derive(Default)]
struct Reads {
    tickets: BTreeMap<u64, (Ticket, u64)>,
    alerts: BTreeMap<String, Option<(Alert, u64)>>,
}

/// Why composing a decision's writes stopped: a record it needs is not read yet, or the
/// decision itself failed.
enum Compose {
    NeedTicket(u64),
    NeedAlert(AlertUid),
    Failed(Error),
}

impl From<DomainError> for Compose {
    fn from(e: DomainError) -> Compose {
        Compose::Failed(e.into())
    }
}

type Composer<T> = dyn Fn(&Reads, &mut Numbers) -> std::result::Result<(Vec<WriteOp>, T), Compose> + Send + Sync;

/// A decision whose writes are built once its numbers are taken: `compose` gives them for
/// the first ticket and action number of the write (it may be called more than once).
pub(crate) struct Numbered<T> {
    /// How many ticket numbers the writes use.
    pub tickets: u64,
    /// How many action numbers the writes use.
    pub actions: u64,
    /// How many store operations the writes are.
    pub ops: usize,
    /// True when the writes touch only the device's state and tickets the decision opens
    /// (no stored ticket, no other alert): a page of such decisions for distinct devices
    /// can share one write.
    pub self_contained: bool,
    reads: Arc<Reads>,
    compose: Arc<Composer<T>>,
}

impl<T> Clone for Numbered<T> {
    fn clone(&self) -> Self {
        Numbered {
            tickets: self.tickets,
            actions: self.actions,
            ops: self.ops,
            self_contained: self.self_contained,
            reads: self.reads.clone(),
            compose: self.compose.clone(),
        }
    }
}

impl<T> Numbered<T> {
    /// Dry-run `compose` until it has read every record it asks for, and count the numbers
    /// and operations it uses.
    async fn prepare(store: &Store, compose: Arc<Composer<T>>) -> Result<Numbered<T>> {
        let mut reads = Reads::default();
        loop {
            let mut numbers = Numbers::from(DRY_RUN_FIRST, DRY_RUN_FIRST);
            match compose(&reads, &mut numbers) {
                Ok((ops, _)) => {
                    return Ok(Numbered {
                        tickets: numbers.tickets,
                        actions: numbers.actions,
                        ops: ops.len(),
                        self_contained: reads.tickets.is_empty() && reads.alerts.is_empty(),
                        reads: Arc::new(reads),
                        compose,
                    })
                }
                Err(Compose::NeedTicket(id)) => {
                    let head = store.ticket_head(id).await?;
                    reads.tickets.insert(id, head);
                }
                Err(Compose::NeedAlert(uid)) => {
                    let alert = store.alert(&uid).await?;
                    reads.alerts.insert(uid.to_string(), alert);
                }
                Err(Compose::Failed(e)) => return Err(e),
            }
        }
    }

    /// The writes and what they decided, numbered from these firsts.
    pub fn compose(&self, first_ticket: u64, first_action: u64) -> (Vec<WriteOp>, T) {
        match (self.compose)(&self.reads, &mut Numbers::from(first_ticket, first_action)) {
            Ok(done) => done,
            // The dry run composed the same decision from the same reads; only the numbers
            // differ, and no step depends on their values.
            Err(_) => unreachable!("a decision composed in its dry run composes with any numbers"),
        }
    }

    /// Store the writes in one atomic write with their numbers taken in it; what they
    /// decided.
    pub async fn write(&self, store: &Store) -> Result<T>
    where
        T: 'static,
    {
        let build = {
            let this = self.clone();
            Arc::new(move |t: u64, a: u64| this.compose(t, a).0)
        };
        let (t, a) = store.write_with_numbers(self.tickets, self.actions, build).await?;
        Ok(self.compose(t, a).1)
    }
}

/// What a decision on one alert gives its intake besides its writes.
pub(crate) struct Decided {
    /// The deciding alert as it is to be stored (its ticket, its timeline line).
    pub alert: Alert,
    /// The request-log outcome and the answer's `decision`.
    pub line: DecisionLine,
    /// True when the decision opened a ticket for this alert (enrichment is asked for).
    pub opened: bool,
    /// A decision that says no more than before noise control (`created`, `resolved`).
    pub plain: bool,
}

/// What noise control adds to an alert decision's write.
pub(crate) type NoiseWrite = Numbered<Decided>;

/// The device an alert counts under: the one its raise was decided under, else the one
/// its facts name (facts later events filled in must not move it to another record).
pub(crate) fn device_of(alert: &Alert) -> DeviceKey {
    match alert.noise_device.as_deref() {
        Some(key) => DeviceKey::stored(key),
        None => DeviceKey::of(&alert.facts).unwrap_or_else(DeviceKey::unknown),
    }
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

/// The tickets a decision touches and the actions it adds, built from [`Reads`].
struct TicketChanges<'a> {
    reads: &'a Reads,
    now: DateTime<Utc>,
    /// id → (ticket, version read; `None` for a ticket this decision opens).
    tickets: BTreeMap<u64, (Ticket, Option<u64>)>,
    actions: Vec<(u64, Action)>,
}

/// What opening a ticket needs besides the effect.
#[derive(Clone)]
struct Opening {
    alert: Alert,
    source: AlertSource,
    mapping: SiteMapping,
    priorities: PriorityMap,
    default_type: Option<u64>,
    device: DeviceKey,
}

impl<'a> TicketChanges<'a> {
    fn new(reads: &'a Reads, now: DateTime<Utc>) -> Self {
        TicketChanges {
            reads,
            now,
            tickets: BTreeMap::new(),
            actions: Vec::new(),
        }
    }

    fn ticket(&mut self, id: u64) -> std::result::Result<&mut Ticket, Compose> {
        if !self.tickets.contains_key(&id) {
            let (t, v) = self.reads.tickets.get(&id).ok_or(Compose::NeedTicket(id))?;
            self.tickets.insert(id, (t.clone(), Some(*v)));
        }
        Ok(&mut self.tickets.get_mut(&id).expect("inserted").0)
    }

    fn action(&mut self, ticket_id: u64, kind: ActionKind, note: String, numbers: &mut Numbers) {
        self.actions.push((
            ticket_id,
            Action {
                id: numbers.action(),
                at: self.now,
                kind,
                agent_id: None,
                note,
            },
        ));
    }

    fn apply(
        &mut self,
        effects: &[TicketEffect],
        opening: Option<&Opening>,
        numbers: &mut Numbers,
    ) -> std::result::Result<(), Compose> {
        let now = self.now;
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
                        Compose::Failed(Error::Store(StoreError::Unavailable(
                            "a ticket opened without its alert".into(),
                        )))
                    })?;
                    let mut t = new_ticket(o, *ticket_id, alert_uid, rule, now, numbers)?;
                    t.noise.parent_id = *parent_id;
                    t.noise.recurrences = *recurrences;
                    t.noise.flapping = *flapping;
                    if let Some(p) = parent_id {
                        let child = *ticket_id;
                        let note = format!("Recurred: ticket {child} opened as its child.");
                        self.action(*p, ActionKind::System, note, numbers);
                    }
                    self.tickets.insert(*ticket_id, (t, None));
                }
                TicketEffect::Reopen { ticket_id, note } => {
                    if !self.ticket(*ticket_id)?.is_open() {
                        let id = numbers.action();
                        let a = self.ticket(*ticket_id)?.reopen(id, None, note, now)?;
                        self.actions.push((*ticket_id, a));
                    }
                }
                TicketEffect::AddAlert {
                    ticket_id,
                    alert_uid,
                    note,
                } => {
                    push_uid(self.ticket(*ticket_id)?, alert_uid);
                    self.action(*ticket_id, ActionKind::Alert, note.clone(), numbers);
                }
                TicketEffect::Note { ticket_id, note } => {
                    self.ticket(*ticket_id)?;
                    self.action(*ticket_id, ActionKind::System, note.clone(), numbers);
                }
                TicketEffect::Close { ticket_id, note } => {
                    let t = self.ticket(*ticket_id)?;
                    if t.is_open() {
                        // A ticket of one alert closes as it always did.
                        let note = if t.noise.alert_uids.len() > 1 {
                            note.as_str()
                        } else {
                            ""
                        };
                        let a = t.close(numbers.action(), None, note, CloseOrigin::Datto, now)?;
                        self.actions.push((*ticket_id, a));
                    }
                }
                TicketEffect::SetRecurrences { ticket_id, count } => {
                    self.ticket(*ticket_id)?.noise.recurrences = *count;
                }
                TicketEffect::SetFlapping { ticket_id, flapping } => {
                    self.ticket(*ticket_id)?.noise.flapping = *flapping;
                }
                // Only an agent's close asks Datto; that path is `close_ticket_by_agent`.
                TicketEffect::ResolveInDatto { .. } => {}
            }
        }
        Ok(())
    }

    /// Whether the ticket is open once the changes are applied (`None`: not touched).
    fn is_open(&self, id: u64) -> Option<bool> {
        self.tickets.get(&id).map(|(t, _)| t.is_open())
    }

    fn into_ops(self) -> Vec<WriteOp> {
        let mut ops = Vec::new();
        for (t, version) in self.tickets.values() {
            match version {
                None => ops.extend(Store::alert_ticket_ops(t)),
                Some(v) => ops.push(Store::ticket_put(t, *v)),
            }
        }
        for (ticket_id, a) in &self.actions {
            ops.push(Store::action_put(*ticket_id, a));
        }
        ops
    }
}

/// The ticket an alert opens, routed by `rule`, with its first action.
fn new_ticket(
    o: &Opening,
    id: u64,
    uid: &AlertUid,
    rule: &RuleDecision,
    now: DateTime<Utc>,
    numbers: &mut Numbers,
) -> std::result::Result<Ticket, Compose> {
    let defaults = TicketDefaults {
        default_ticket_type_id: o.default_type,
        priorities: &o.priorities,
    };
    let routed = routed_ticket(uid, &o.alert.facts, rule, defaults)?.ok_or_else(|| {
        Compose::Failed(Error::Store(StoreError::Unavailable(
            "a suppressed alert cannot open a ticket".into(),
        )))
    })?;
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
        noise: AlertTicketNoise {
            alert_uids: vec![uid.to_string()],
            device: Some(o.device.as_str().to_string()),
            ..Default::default()
        },
        created_at: now,
        closed_at: None,
        close_origin: None,
        actions: vec![Action {
            id: numbers.action(),
            at: now,
            kind: ActionKind::Alert,
            agent_id: None,
            note,
        }],
    })
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
fn other_alert_ops(
    reads: &Reads,
    deciding: &AlertUid,
    lines: &[(AlertUid, DecisionLine)],
    at: DateTime<Utc>,
) -> std::result::Result<Vec<WriteOp>, Compose> {
    let mut by_alert: BTreeMap<&str, (&AlertUid, Vec<&DecisionLine>)> = BTreeMap::new();
    for (uid, line) in lines.iter().filter(|(u, _)| u != deciding) {
        by_alert.entry(uid.as_str()).or_insert((uid, Vec::new())).1.push(line);
    }
    let mut ops = Vec::new();
    for (key, (uid, lines)) in by_alert {
        match reads.alerts.get(key) {
            None => return Err(Compose::NeedAlert(uid.clone())),
            Some(None) => {}
            Some(Some((a, v))) => {
                let mut a = a.clone();
                for l in lines {
                    a.timeline.push(noise_entry(at, "time", l));
                }
                ops.push(Store::alert_put(&a, Some(*v)));
            }
        }
    }
    Ok(ops)
}

/// The type a ticket gets when no rule sets one: the Datto setting, else the desk default.
async fn default_type(store: &Store, settings: &DattoSettings) -> Result<Option<u64>> {
    Ok(match settings.default_ticket_type_id {
        Some(t) => Some(t),
        None => store.default_ticket_type().await?.map(|t| t.id),
    })
}

/// A new alert that `alerts::apply` would open a ticket for: decide relate, recur, flap,
/// hold, route or suppress. `alert` is the alert about to be stored; the decision sets its
/// ticket and its timeline line. `mapping` is where its ticket would go, `default_type`
/// the ticket type when no rule sets one.
pub(crate) async fn on_raise(
    store: &Store,
    config: &NoiseConfig,
    ev: &AlertEvent,
    alert: &Alert,
    mapping: &SiteMapping,
    priorities: &PriorityMap,
    default_type: Option<u64>,
) -> Result<NoiseWrite> {
    let device = device_of(alert);
    let (state, version) = store.device_noise(&device).await?;
    let raised = RaisedAlert {
        uid: &ev.uid,
        at: ev.at,
        facts: &alert.facts,
        customer_id: Some(mapping.customer_id),
        site_id: Some(mapping.site_id),
        released: false,
    };
    let plan = decide_raise(&state, &raised, &config.policy());
    let plain = matches!(
        plan.decision,
        RaiseDecision::NewTicket {
            rule: RuleDecision::NoMatch
        }
    ) && !plan.starts_flapping;
    let opening = Opening {
        alert: alert.clone(),
        source: ev.source,
        mapping: mapping.clone(),
        priorities: priorities.clone(),
        default_type,
        device,
    };
    let settings = config.settings;
    let (uid, at, now) = (ev.uid.clone(), ev.at, store.clock().now());
    let compose = move |reads: &Reads, numbers: &mut Numbers| {
        let raised = RaisedAlert {
            uid: &uid,
            at,
            facts: &opening.alert.facts,
            customer_id: Some(opening.mapping.customer_id),
            site_id: Some(opening.mapping.site_id),
            released: false,
        };
        let number = plan.opens_ticket().then(|| numbers.ticket());
        let rec = plan.record(&raised, number, &settings)?;
        let mut changes = TicketChanges::new(reads, now);
        changes.apply(&rec.effects, Some(&opening), numbers)?;
        let ticket_id = ticket_of(&rec, &uid);
        let mut ops = vec![Store::device_noise_put(&rec.state, version)];
        ops.extend(other_alert_ops(reads, &uid, &rec.other_lines, at)?);
        ops.extend(changes.into_ops());
        let mut alert = opening.alert.clone();
        alert.ticket_id = ticket_id;
        alert.ticket_open = ticket_id.is_some();
        alert.noise_device = Some(opening.device.as_str().to_string());
        if let Some(last) = alert.timeline.last_mut() {
            if !plain {
                last.decision = Decision::Noise;
            }
            last.note = Some(rec.line.sentence.clone());
        }
        let decided = Decided {
            alert,
            line: rec.line,
            opened: number.is_some(),
            plain,
        };
        Ok((ops, decided))
    };
    Numbered::prepare(store, Arc::new(compose)).await
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
/// caller closes the alert's own ticket as before. `alert` is the alert about to be stored.
pub(crate) async fn on_resolve(
    store: &Store,
    config: &NoiseConfig,
    ev: &AlertEvent,
    alert: &Alert,
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
    let alert = alert.clone();
    let (uid, at, now) = (ev.uid.clone(), ev.at, store.clock().now());
    let compose = move |reads: &Reads, numbers: &mut Numbers| {
        let mut changes = TicketChanges::new(reads, now);
        changes.apply(&r.recorded.effects, None, numbers)?;
        let mut ops = vec![Store::device_noise_put(&r.recorded.state, version)];
        ops.extend(other_alert_ops(reads, &uid, &r.recorded.other_lines, at)?);
        let still_open = match alert.ticket_id {
            Some(t) => changes
                .is_open(t)
                .unwrap_or_else(|| r.recorded.state.ticket(t).is_some_and(|t| t.open)),
            None => false,
        };
        ops.extend(changes.into_ops());
        let mut alert = alert.clone();
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
        let decided = Decided {
            alert,
            line: r.recorded.line.clone(),
            opened: false,
            plain: matches!(r.decision, ResolveDecision::Close { .. }),
        };
        Ok((ops, decided))
    };
    Ok(Some(Numbered::prepare(store, Arc::new(compose)).await?))
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
/// by the setting, stay without a ticket). One transaction per device, its new ticket and
/// action numbers taken in it.
pub async fn settle_devices(store: &Store, settings: &DattoSettings, now: DateTime<Utc>) -> Result<SettleCount> {
    let config = store.noise_config().await?;
    let mut count = SettleCount::default();
    for device in store.unsettled_devices().await? {
        for attempt in 0.. {
            match settle_device(store, settings, &config, &device, now).await {
                Err(Error::Store(StoreError::ConditionFailed { .. })) if attempt < 8 => continue,
                other => {
                    let done = other?;
                    count.devices += done.devices;
                    count.released += done.released;
                    count.tickets_opened += done.tickets_opened;
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
) -> Result<SettleCount> {
    let (state, version) = store.device_noise(device).await?;
    let settled = settle(&state, now, &config.policy());
    if settled.state == state {
        return Ok(SettleCount::default());
    }
    // The released alerts still open without a ticket, with where their tickets go.
    let mut released = Vec::new();
    for uid in &settled.release {
        let Some((alert, v)) = store.alert(uid).await? else {
            continue;
        };
        if alert.state != AlertState::Open || alert.ticket_id.is_some() {
            continue;
        }
        let mapping = mapping_for(store, &alert, settings).await?;
        released.push((alert, v, mapping));
    }
    let default_type = default_type(store, settings).await?;
    let (config, priorities, device) = (config.clone(), settings.priority_map.clone(), device.clone());
    let compose = move |reads: &Reads, numbers: &mut Numbers| {
        let mut changes = TicketChanges::new(reads, now);
        changes.apply(&settled.effects, None, numbers)?;
        let mut lines = settled.lines.clone();
        let mut alerts: BTreeMap<String, (Alert, u64)> = BTreeMap::new();
        let mut current = settled.state.clone();
        let mut count = SettleCount {
            devices: 1,
            ..Default::default()
        };
        for (alert, v, mapping) in &released {
            let uid = &alert.alert_uid;
            let raised = RaisedAlert {
                uid,
                at: now,
                facts: &alert.facts,
                customer_id: Some(mapping.customer_id),
                site_id: Some(mapping.site_id),
                released: true,
            };
            let plan = decide_raise(&current, &raised, &config.policy());
            let number = plan.opens_ticket().then(|| numbers.ticket());
            let rec = plan.record(&raised, number, &config.settings)?;
            let opening = Opening {
                alert: alert.clone(),
                source: alert.sources.first().copied().unwrap_or(AlertSource::Poll),
                mapping: mapping.clone(),
                priorities: priorities.clone(),
                default_type,
                device: device.clone(),
            };
            changes.apply(&rec.effects, Some(&opening), numbers)?;
            let ticket_id = ticket_of(&rec, uid);
            let mut alert = alert.clone();
            alert.ticket_id = ticket_id;
            alert.ticket_open = ticket_id.is_some();
            lines.push((uid.clone(), rec.line.clone()));
            lines.extend(rec.other_lines.iter().cloned());
            current = rec.state;
            count.tickets_opened += usize::from(number.is_some());
            count.released += 1;
            alerts.insert(uid.to_string(), (alert, *v));
        }
        let mut ops = vec![Store::device_noise_put(&current, version)];
        for (uid, line) in &lines {
            let entry = noise_entry(now, "time", line);
            if let Some((a, _)) = alerts.get_mut(uid.as_str()) {
                a.timeline.push(entry);
                continue;
            }
            match reads.alerts.get(uid.as_str()) {
                None => return Err(Compose::NeedAlert(uid.clone())),
                Some(None) => {}
                Some(Some((a, v))) => {
                    let mut a = a.clone();
                    a.timeline.push(entry);
                    alerts.insert(uid.to_string(), (a, *v));
                }
            }
        }
        for (a, v) in alerts.values() {
            ops.push(Store::alert_put(a, Some(*v)));
        }
        ops.extend(changes.into_ops());
        Ok((ops, count))
    };
    Numbered::prepare(store, Arc::new(compose)).await?.write(store).await
}
