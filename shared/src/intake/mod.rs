//! Alert intake: an `AlertEvent` from any source (webhook, e-mail, poll) taken to one
//! durable decision — alert, ticket and request-log entry written in one transaction —
//! and then, for a new ticket, the request for its enrichment (`accept`).

pub mod mail;
pub mod noise;
pub mod ses;

use std::collections::HashMap;

use futures::StreamExt;
use rand::Rng;

use crate::domain::alerts::{
    apply, ticket_draft, AlertEvent, AlertEventKind, AlertSource, AlertState, AlertUid, Applied, Effect, Outcome,
};
use crate::domain::datto::{DattoSettings, SiteMapping};
use crate::domain::tickets::{Action, ActionKind, Ticket, TicketStatus};
use crate::error::{Error, Result};
use crate::ports::{Queue, QueueName, StoreError};
use crate::store::{AlertWrite, NewAlert, NoiseConfig, RequestLogEntry, Store};

use self::noise::{Decided, NoiseWrite};

/// How often a decision is retaken after another writer changed the alert first.
const ATTEMPTS: usize = 40;

/// What an intake answered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct IntakeResult {
    pub result: Outcome,
    pub alert_uid: AlertUid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<u64>,
    /// What noise control decided (`related to ticket 12`, `suppressed by rule 1 'Lab'`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Duplicate => "duplicate",
        Outcome::Resolved => "resolved",
    }
}

fn source_word(s: AlertSource) -> &'static str {
    match s {
        AlertSource::Webhook => "webhook",
        AlertSource::Email => "e-mail",
        AlertSource::Poll => "poll",
    }
}

/// The customer site an alert's ticket goes to: the mapping, or the site imported now.
async fn alert_site(store: &Store, ev: &AlertEvent, settings: &DattoSettings) -> Result<SiteMapping> {
    let facts = &ev.facts;
    match facts.site_uid.as_deref() {
        Some(site_uid) => {
            store
                .site_for_datto(site_uid, facts.site_name.as_deref(), settings)
                .await
        }
        None => store.fallback_alert_site(settings).await,
    }
}

/// The ticket type of alert tickets: the configured one, else the desk's default.
async fn alert_ticket_type(store: &Store, settings: &DattoSettings) -> Result<Option<u64>> {
    match settings.default_ticket_type_id {
        Some(t) => Ok(Some(t)),
        None => Ok(store.default_ticket_type().await?.map(|t| t.id)),
    }
}

/// Build the ticket an alert opens (customer and site from the mapping or the import).
async fn new_alert_ticket(store: &Store, ev: &AlertEvent, settings: &DattoSettings) -> Result<Ticket> {
    let mapping = alert_site(store, ev, settings).await?;
    let ticket_type_id = alert_ticket_type(store, settings).await?;
    alert_ticket_draft(ev, settings, &mapping, ticket_type_id, store.clock().now())
}

/// The ticket an alert opens, as a draft: its number and its action's number are taken
/// in the write that stores it (`Store::write_alert`), so a lost race leaves a gap, never a
/// second ticket.
fn alert_ticket_draft(
    ev: &AlertEvent,
    settings: &DattoSettings,
    mapping: &SiteMapping,
    ticket_type_id: Option<u64>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Ticket> {
    let facts = &ev.facts;
    let draft = ticket_draft(&ev.uid, facts, &settings.priority_map)?;
    let (id, action_id) = (0, 0);
    let note = format!(
        "Datto RMM alert raised (via {}): {}",
        source_word(ev.source),
        facts.message.as_deref().unwrap_or(&draft.summary)
    );
    Ok(Ticket {
        id,
        summary: draft.summary,
        details: draft.details,
        status: TicketStatus::Open,
        customer_id: mapping.customer_id,
        site_id: mapping.site_id,
        user_id: None,
        ticket_type_id,
        priority: draft.priority,
        alert_uid: Some(ev.uid.as_str().to_string()),
        asset: draft.asset,
        custom_fields: draft.custom_fields,
        created_at: now,
        closed_at: None,
        close_origin: None,
        team_id: None,
        noise: Default::default(),
        actions: vec![Action {
            id: action_id,
            at: now,
            kind: ActionKind::Alert,
            agent_id: None,
            note,
        }],
    })
}

/// The `alert-enrich` message: add Datto's details to the new ticket of an alert.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EnrichRequest {
    pub ticket_id: u64,
    pub alert_uid: String,
}

/// Every source's way in: apply the event durably (`ingest_with`), then ask for the new
/// ticket's enrichment. Once the decision is stored the intake has succeeded, whatever
/// happens to the request for enrichment: that is best effort (a failed send is logged and
/// the ticket stands without the extra details), so no source ever sees a failure for a
/// decision that was made, and none retries an event that was already applied.
pub async fn accept(
    store: &Store,
    queue: &dyn Queue,
    settings: &DattoSettings,
    ev: &AlertEvent,
    log: Option<RequestLogEntry>,
) -> Result<IntakeResult> {
    let result = ingest_with(store, settings, ev, log).await?;
    request_enrichment(queue, settings, &result).await;
    Ok(result)
}

/// Alerts of one numbered write in [`accept_new`]: at most this many store operations
/// (the store's limit is 100; an alert with its ticket and action is 3).
const PAGE_OPS: usize = 99;

/// Pages of [`accept_new`] written at once: on SQLite they share group commits, on
/// DynamoDB their transactions overlap.
const PAGES_IN_FLIGHT: usize = 4;

/// Apply many events of alerts the caller found absent from the store (a sync's new
/// alerts) with one atomic write per page instead of one per alert, then ask for the new
/// tickets' enrichment; the decisions are those `accept` takes for an absent alert.
/// `mappings` (Datto site uid → site, as the caller read them) saves a read per alert
/// and learns the sites imported here. A page that loses a race (a webhook stored one
/// of its alerts meanwhile) is written nowhere and goes through `accept` alert by alert,
/// which reads and decides again. Results are in the order of `events`.
///
/// With noise control active, each alert is decided by it against its device's state;
/// the decisions that touch nothing but their device and the ticket they open (the
/// common case: a new ticket) share pages, one alert per device. The others (an alert
/// related to or recurring on a stored ticket, several alerts of one device) go through
/// `accept`'s path one by one after the pages, in their order.
pub async fn accept_new(
    store: &Store,
    queue: &dyn Queue,
    settings: &DattoSettings,
    events: &[AlertEvent],
    mappings: &mut HashMap<String, SiteMapping>,
) -> Result<Vec<IntakeResult>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let config = store.noise_config().await?;
    let results = if config.is_active() {
        decide_new(store, settings, &config, events, mappings).await?
    } else {
        apply_new(store, settings, events, mappings).await?
    };
    for r in &results {
        request_enrichment(queue, settings, r).await;
    }
    Ok(results)
}

/// [`accept_new`] without noise control: `alerts::apply` decides, pages of new alerts
/// with their tickets.
async fn apply_new(
    store: &Store,
    settings: &DattoSettings,
    events: &[AlertEvent],
    mappings: &mut HashMap<String, SiteMapping>,
) -> Result<Vec<IntakeResult>> {
    let ticket_type_id = alert_ticket_type(store, settings).await?;
    let now = store.clock().now();
    let mut decided = Vec::with_capacity(events.len());
    for ev in events {
        let applied = apply(None, ev);
        let ticket = if applied.effect == Some(Effect::OpenTicket) {
            let mapping = cached_site(store, ev, settings, mappings).await?;
            Some(alert_ticket_draft(ev, settings, &mapping, ticket_type_id, now)?)
        } else {
            None
        };
        let outcome = applied.outcome;
        let alert = NewAlert {
            alert: applied.alert,
            previous_version: None,
            ticket,
        };
        decided.push((ev.clone(), outcome, alert));
    }

    let mut pages: Vec<Vec<(AlertEvent, Outcome, NewAlert)>> = Vec::new();
    let mut ops = 0;
    for d in decided {
        let n = Store::new_alert_ops(&d.2);
        if pages.is_empty() || ops + n > PAGE_OPS {
            pages.push(Vec::new());
            ops = 0;
        }
        ops += n;
        pages.last_mut().expect("a page").push(d);
    }

    // Futures made up front (not in a stream's closure) keep the future `Send` for spawn.
    let writes: Vec<_> = pages
        .into_iter()
        .map(|page| write_page(store, settings, page))
        .collect();
    let written: Vec<Result<Vec<IntakeResult>>> =
        futures::stream::iter(writes).buffered(PAGES_IN_FLIGHT).collect().await;
    let mut results = Vec::with_capacity(events.len());
    for page in written {
        results.extend(page?);
    }
    Ok(results)
}

/// [`accept_new`] with noise control active.
async fn decide_new(
    store: &Store,
    settings: &DattoSettings,
    config: &NoiseConfig,
    events: &[AlertEvent],
    mappings: &mut HashMap<String, SiteMapping>,
) -> Result<Vec<IntakeResult>> {
    let ticket_type_id = alert_ticket_type(store, settings).await?;
    let applied: Vec<Applied> = events.iter().map(|ev| apply(None, ev)).collect();
    let mut per_device: HashMap<crate::domain::noise::DeviceKey, usize> = HashMap::new();
    for a in &applied {
        *per_device.entry(noise::device_of(&a.alert)).or_default() += 1;
    }
    let mut results: Vec<Option<IntakeResult>> = vec![None; events.len()];
    let mut pages: Vec<Vec<(usize, NoiseWrite)>> = Vec::new();
    let mut alone = Vec::new();
    let mut ops = 0;
    for (i, (ev, a)) in events.iter().zip(&applied).enumerate() {
        if a.effect != Some(Effect::OpenTicket) || per_device[&noise::device_of(&a.alert)] > 1 {
            alone.push(i);
            continue;
        }
        let n = noise_raise(store, settings, config, ev, a, Some((&mut *mappings, ticket_type_id))).await?;
        if !n.self_contained {
            alone.push(i);
            continue;
        }
        let cost = n.ops + 1;
        if pages.is_empty() || ops + cost > PAGE_OPS {
            pages.push(Vec::new());
            ops = 0;
        }
        ops += cost;
        pages.last_mut().expect("a page").push((i, n));
    }
    let writes: Vec<_> = pages
        .into_iter()
        .map(|page| write_decided_page(store, settings, events, page))
        .collect();
    let written: Vec<Result<Vec<(usize, IntakeResult)>>> =
        futures::stream::iter(writes).buffered(PAGES_IN_FLIGHT).collect().await;
    for page in written {
        for (i, r) in page? {
            results[i] = Some(r);
        }
    }
    for i in alone {
        results[i] = Some(ingest_with(store, settings, &events[i], None).await?);
    }
    Ok(results.into_iter().map(|r| r.expect("every event decided")).collect())
}

/// One page of [`decide_new`]: the alerts and their decisions' writes in one write, or
/// alert by alert after a lost race (on an alert or a device's state).
async fn write_decided_page(
    store: &Store,
    settings: &DattoSettings,
    events: &[AlertEvent],
    page: Vec<(usize, NoiseWrite)>,
) -> Result<Vec<(usize, IntakeResult)>> {
    let tickets = page.iter().map(|(_, n)| n.tickets).sum();
    let actions = page.iter().map(|(_, n)| n.actions).sum();
    let page = std::sync::Arc::new(page);
    let build = {
        let page = page.clone();
        std::sync::Arc::new(move |ticket: u64, action: u64| {
            let (mut ticket, mut action) = (ticket, action);
            let mut ops = Vec::new();
            for (_, n) in page.iter() {
                let (decided_ops, d) = n.compose(ticket, action);
                ticket += n.tickets;
                action += n.actions;
                ops.push(Store::alert_put(&d.alert, None));
                ops.extend(decided_ops);
            }
            ops
        })
    };
    match store.write_with_numbers(tickets, actions, build).await {
        Ok((mut ticket, mut action)) => {
            let mut results = Vec::with_capacity(page.len());
            for (i, n) in page.iter() {
                let d = n.compose(ticket, action).1;
                ticket += n.tickets;
                action += n.actions;
                results.push((*i, decided_result(&events[*i].uid, Outcome::Created, &d)));
            }
            tracing::info!(
                alerts = results.len(),
                "page of new alert events decided by noise control"
            );
            Ok(results)
        }
        Err(Error::Store(StoreError::ConditionFailed { pk, .. })) if pk == "alert" || pk == "noise-device" => {
            let mut results = Vec::with_capacity(page.len());
            for (i, _) in page.iter() {
                results.push((*i, ingest_with(store, settings, &events[*i], None).await?));
            }
            Ok(results)
        }
        Err(e) => Err(e),
    }
}

/// One page of [`accept_new`]: one write, or alert by alert after a lost race.
async fn write_page(
    store: &Store,
    settings: &DattoSettings,
    page: Vec<(AlertEvent, Outcome, NewAlert)>,
) -> Result<Vec<IntakeResult>> {
    let alerts = page.iter().map(|(_, _, a)| a.clone()).collect();
    match store.write_new_alerts(alerts, Vec::new()).await {
        Ok(tickets) => {
            let results: Vec<IntakeResult> = page
                .iter()
                .zip(tickets)
                .map(|((ev, outcome, _), ticket_id)| IntakeResult {
                    result: *outcome,
                    alert_uid: ev.uid.clone(),
                    ticket_id,
                    decision: None,
                })
                .collect();
            tracing::info!(alerts = results.len(), "page of new alert events applied");
            Ok(results)
        }
        Err(Error::Store(StoreError::ConditionFailed { pk, .. })) if pk == "alert" => {
            let mut results = Vec::with_capacity(page.len());
            for (ev, _, _) in &page {
                results.push(ingest_with(store, settings, ev, None).await?);
            }
            Ok(results)
        }
        Err(e) => Err(e),
    }
}

/// After an intake created a ticket, ask for its enrichment when the Datto API is set up.
async fn request_enrichment(queue: &dyn Queue, settings: &DattoSettings, result: &IntakeResult) {
    if result.result != Outcome::Created || settings.api_url.is_none() || settings.api_key.is_none() {
        return;
    }
    let Some(ticket_id) = result.ticket_id else {
        return;
    };
    let body = serde_json::to_string(&EnrichRequest {
        ticket_id,
        alert_uid: result.alert_uid.to_string(),
    })
    .expect("json");
    if let Err(e) = queue.send(QueueName::AlertEnrich, &body).await {
        tracing::warn!(ticket_id, error = %e, "enrichment not requested; the ticket stands without Datto's details");
    }
}

/// Apply one alert event durably, under the Datto settings read by the caller (a sync
/// applies many events under one). `log`, when given, is completed with the outcome and
/// stored in the same transaction as the decision. With noise control active, a raise is
/// decided by it (and a resolve of an alert it tracks); otherwise, and for every other
/// event, by `alerts::apply` alone.
pub async fn ingest_with(
    store: &Store,
    settings: &DattoSettings,
    ev: &AlertEvent,
    mut log: Option<RequestLogEntry>,
) -> Result<IntakeResult> {
    let config = store.noise_config().await?;
    if let Some(l) = log.as_mut() {
        l.status = 200;
        l.alert_uid = Some(ev.uid.to_string());
    }
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Spread retries of concurrent duplicates a little.
            let ms = rand::rng().random_range(1..=(5 * attempt as u64).min(50));
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let current = store.alert(&ev.uid).await?;
        let applied = apply(current.as_ref().map(|(a, _)| a), ev);
        let previous_version = current.as_ref().map(|(_, v)| *v);
        let was_open = current.as_ref().is_some_and(|(a, _)| a.state == AlertState::Open);
        let noise = if applied.effect == Some(Effect::OpenTicket) && config.is_active() {
            Some(noise_raise(store, settings, &config, ev, &applied, None).await?)
        } else if ev.kind == AlertEventKind::Resolved && was_open {
            noise::on_resolve(store, &config, ev, &applied.alert).await?
        } else {
            None
        };
        let written = match noise {
            Some(n) => write_decided(store, ev, applied.outcome, previous_version, log.as_ref(), &n).await,
            None => write_applied(store, settings, ev, &applied, previous_version, log.as_mut()).await,
        };
        match written {
            Err(Error::Store(StoreError::ConditionFailed { pk, .. }))
                if pk == "alert" || pk == "ticket" || pk == "noise-device" || pk.starts_with("ticket#") =>
            {
                continue
            }
            other => return other,
        }
    }
    Err(StoreError::Unavailable(format!("alert {} kept changing; try again", ev.uid).into()).into())
}

/// Noise control's decision on a raise that opens a ticket without it. `mappings`, when
/// given, is the caller's cache of site mappings (a sync's).
async fn noise_raise(
    store: &Store,
    settings: &DattoSettings,
    config: &NoiseConfig,
    ev: &AlertEvent,
    applied: &Applied,
    mappings: Option<(&mut HashMap<String, SiteMapping>, Option<u64>)>,
) -> Result<NoiseWrite> {
    let (mapping, ticket_type_id) = match mappings {
        Some((cache, ticket_type_id)) => (cached_site(store, ev, settings, cache).await?, ticket_type_id),
        None => (
            alert_site(store, ev, settings).await?,
            alert_ticket_type(store, settings).await?,
        ),
    };
    noise::on_raise(
        store,
        config,
        ev,
        &applied.alert,
        &mapping,
        &settings.priority_map,
        ticket_type_id,
    )
    .await
}

/// The site of an alert's ticket from the caller's cache of mappings, learning the ones
/// read or imported now.
async fn cached_site(
    store: &Store,
    ev: &AlertEvent,
    settings: &DattoSettings,
    mappings: &mut HashMap<String, SiteMapping>,
) -> Result<SiteMapping> {
    if let Some(m) = ev.facts.site_uid.as_deref().and_then(|uid| mappings.get(uid)) {
        return Ok(m.clone());
    }
    let m = alert_site(store, ev, settings).await?;
    if let Some(uid) = &ev.facts.site_uid {
        mappings.insert(uid.clone(), m.clone());
    }
    Ok(m)
}

/// Store a decision of `alerts::apply` alone (noise control inactive, or not concerned):
/// a new ticket's numbers are taken in the write.
async fn write_applied(
    store: &Store,
    settings: &DattoSettings,
    ev: &AlertEvent,
    applied: &Applied,
    previous_version: Option<u64>,
    log: Option<&mut RequestLogEntry>,
) -> Result<IntakeResult> {
    let log = log.map(|l| {
        l.outcome = outcome_word(applied.outcome).to_string();
        &*l
    });
    let mut result = IntakeResult {
        result: applied.outcome,
        alert_uid: ev.uid.clone(),
        ticket_id: applied.alert.ticket_id,
        decision: None,
    };
    if !applied.changed && applied.effect.is_none() {
        if let Some(l) = log {
            store.log_request(l).await?;
        }
        return Ok(result);
    }
    let new_ticket = match applied.effect {
        Some(Effect::OpenTicket) => Some(new_alert_ticket(store, ev, settings).await?),
        _ => None,
    };
    let close_ticket = match applied.effect {
        Some(Effect::CloseTicket { ticket_id }) => Some(ticket_id),
        _ => None,
    };
    let write = AlertWrite {
        alert: &applied.alert,
        previous_version,
        new_ticket: new_ticket.as_ref(),
        close_ticket,
        log,
    };
    if let Some(ticket_id) = store.write_alert(write).await? {
        result.ticket_id = Some(ticket_id);
    }
    tracing::info!(alert_uid = %ev.uid, outcome = outcome_word(applied.outcome), ticket_id = ?result.ticket_id, "alert event applied");
    Ok(result)
}

/// What an intake answers for a decision of noise control.
fn decided_result(uid: &AlertUid, outcome: Outcome, d: &Decided) -> IntakeResult {
    let result = match outcome {
        Outcome::Created if !d.opened && d.alert.ticket_id.is_some() => Outcome::Updated,
        o => o,
    };
    IntakeResult {
        result,
        alert_uid: uid.clone(),
        ticket_id: d.alert.ticket_id,
        decision: Some(d.line.outcome.clone()),
    }
}

/// The request-log entry of a decision of noise control: its outcome line, or the plain
/// word when it said no more than before noise control.
fn decided_log(log: &RequestLogEntry, outcome: Outcome, d: &Decided) -> RequestLogEntry {
    let mut l = log.clone();
    l.outcome = if d.plain {
        outcome_word(outcome).to_string()
    } else {
        d.line.outcome.clone()
    };
    l
}

/// Store a decision of noise control: the alert, the decision's writes and the log entry
/// in one write, with the ticket and action numbers taken in it.
async fn write_decided(
    store: &Store,
    ev: &AlertEvent,
    outcome: Outcome,
    previous_version: Option<u64>,
    log: Option<&RequestLogEntry>,
    n: &NoiseWrite,
) -> Result<IntakeResult> {
    let build = {
        let (n, log) = (n.clone(), log.cloned());
        std::sync::Arc::new(move |ticket: u64, action: u64| {
            let (decided_ops, d) = n.compose(ticket, action);
            let mut ops = Vec::with_capacity(decided_ops.len() + 2);
            ops.push(Store::alert_put(&d.alert, previous_version));
            ops.extend(decided_ops);
            if let Some(l) = &log {
                ops.push(Store::request_log_op(&decided_log(l, outcome, &d)));
            }
            ops
        })
    };
    let (ticket, action) = store.write_with_numbers(n.tickets, n.actions, build).await?;
    let result = decided_result(&ev.uid, outcome, &n.compose(ticket, action).1);
    tracing::info!(alert_uid = %ev.uid, outcome = outcome_word(result.result), decision = ?result.decision, ticket_id = ?result.ticket_id, "alert event applied");
    Ok(result)
}
