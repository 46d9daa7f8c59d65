//! Repository of Datto alerts, Datto settings, site mappings and the intake request log;
//! an alert and its ticket are always written in one transaction on the alert's version.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::desk::{missing_reference, CUSTOMER, SITE};
use super::tickets::{put_action, ACTION, TICKET};
use super::{Listing, PageRequest, Store};
use crate::domain::alerts::{Alert, AlertUid};
use crate::domain::datto::{DattoSettings, ImportMode, SiteMapping};
use crate::domain::desk::{Customer, Site};
use crate::domain::tickets::{CloseOrigin, Ticket};
use crate::domain::DomainError;
use crate::error::{Error, Result};
use crate::ports::{Condition, CounterTake, Index, Query, Record, StoreError, WriteOp};

pub(crate) const ALERT: &str = "alert";
const CONFIG: &str = "config";
const COUNTER: &str = "counter";
const SITE_MAPPING: &str = "site-mapping";
const REQUEST_LOG: &str = "request-log";
/// How long request-log entries are kept.
pub const REQUEST_LOG_DAYS: i64 = 30;

/// One intake request as recorded in the request log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestLogEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    /// `datto-webhook`, `datto-mail` or `beyondtrust-event`.
    pub source: String,
    /// The HTTP status answered.
    pub status: u16,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsid: Option<String>,
    /// The raw body, kept when it could not be understood (at most 16 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
}

impl RequestLogEntry {
    pub fn new(source: &str, at: DateTime<Utc>) -> Self {
        RequestLogEntry {
            id: uuid::Uuid::new_v4().simple().to_string(),
            at,
            source: source.to_string(),
            status: 0,
            outcome: String::new(),
            reason: None,
            alert_uid: None,
            lsid: None,
            raw_body: None,
        }
    }

    /// Keep (up to 16 KiB of) the body that could not be understood, with the string
    /// value of every `"state"` key (Datto's webhook secret) replaced: the request log is
    /// read through the API, and no secret may appear in an API answer.
    pub fn keep_raw(&mut self, body: &[u8]) {
        let cut = &body[..body.len().min(16 * 1024)];
        self.raw_body = Some(redact_state(&String::from_utf8_lossy(cut)));
    }
}

/// `text` with the string after each `"state"` key and its colon replaced by `[redacted]`;
/// works on bodies that are not valid JSON (a value cut off runs to the end).
fn redact_state(text: &str) -> String {
    const KEY: &str = "\"state\"";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(KEY) {
        let after_key = at + KEY.len();
        out.push_str(&rest[..after_key]);
        rest = &rest[after_key..];
        let colon = rest.len() - rest.trim_start().len();
        let Some(tail) = rest[colon..].strip_prefix(':') else {
            continue;
        };
        let quote = tail.len() - tail.trim_start().len();
        let Some(value) = tail[quote..].strip_prefix('"') else {
            continue;
        };
        out.push_str(&rest[..colon + 1 + quote + 1]);
        let mut escaped = false;
        let end = value
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map_or(value.len(), |(i, _)| i);
        out.push_str("[redacted]");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_state;

    #[test]
    fn the_state_value_is_redacted_even_in_broken_json() {
        assert_eq!(
            redact_state(r#"{"state": "s3cr\"et", "alert_uid": "#),
            r#"{"state": "[redacted]", "alert_uid": "#
        );
        assert_eq!(redact_state(r#"{"state":"abc"#), r#"{"state":"[redacted]"#);
        assert_eq!(
            redact_state(r#"{"state": 5, "x": "state"}"#),
            r#"{"state": 5, "x": "state"}"#
        );
        assert_eq!(redact_state("no key"), "no key");
    }
}

/// Filters of the request log.
#[derive(Debug, Clone, Default)]
pub struct RequestLogFilter {
    pub source: Option<String>,
    pub outcome: Option<String>,
}

/// A new alert to store with [`Store::write_new_alerts`].
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub alert: Alert,
    /// The version read before deciding; `None` when the alert was new.
    pub previous_version: Option<u64>,
    /// The ticket it opens, a draft numbered in the write.
    pub ticket: Option<Ticket>,
}

/// How an alert's decision is to be stored.
pub struct AlertWrite<'a> {
    pub alert: &'a Alert,
    /// The version read before deciding; `None` when the alert was new.
    pub previous_version: Option<u64>,
    /// A new ticket to create with the alert: a draft whose ticket number and action
    /// numbers are taken in the write itself (whatever `id`s it carries are replaced).
    pub new_ticket: Option<&'a Ticket>,
    /// An open ticket to close because Datto resolved the alert.
    pub close_ticket: Option<u64>,
    /// Log entry stored in the same transaction.
    pub log: Option<&'a RequestLogEntry>,
}

fn alert_record(alert: &Alert, version: u64) -> Record {
    Record::new(
        ALERT,
        alert.alert_uid.as_str(),
        serde_json::to_value(alert).expect("serializable"),
    )
    .with_version(version)
}

impl Record {
    fn with_version(mut self, v: u64) -> Record {
        self.version = v;
        self
    }
}

impl Store {
    // ---- alerts -----------------------------------------------------------------------

    pub async fn alert(&self, uid: &AlertUid) -> Result<Option<(Alert, u64)>> {
        match self.records().get(ALERT, uid.as_str()).await? {
            Some(r) => Ok(Some((Self::decode(&r)?, r.version))),
            None => Ok(None),
        }
    }

    /// The operation that stores `alert` on top of `previous_version`.
    pub fn alert_put(alert: &Alert, previous_version: Option<u64>) -> WriteOp {
        match previous_version {
            None => WriteOp::Put {
                record: alert_record(alert, 1),
                condition: Condition::NotExists,
            },
            Some(v) => WriteOp::Put {
                record: alert_record(alert, v + 1),
                condition: Condition::VersionIs(v),
            },
        }
    }

    /// Store an alert decision atomically; returns the new ticket's number when it opened
    /// one. The numbers are taken inside the same atomic write (`write_numbered`), so a
    /// lost race leaves a gap, never a second ticket. A lost race on the alert comes back
    /// as `ConditionFailed` on the alert's key, for the caller to re-read and decide again.
    pub async fn write_alert(&self, w: AlertWrite<'_>) -> std::result::Result<Option<u64>, Error> {
        let mut ops = Vec::new();
        if let Some(tid) = w.close_ticket {
            let (mut t, v): (Ticket, u64) = self.ticket_head(tid).await?;
            if t.is_open() {
                let (action_id, now) = self.new_action_stamp().await?;
                let action = t.close(action_id, None, "", CloseOrigin::Datto, now)?;
                ops.push(Self::put_over(TICKET, tid, &t, v));
                ops.push(put_action(tid, &action));
            }
        }
        if let Some(log) = w.log {
            ops.push(self.request_log_put(log));
        }
        match w.new_ticket {
            None => {
                ops.insert(0, Self::alert_put(w.alert, w.previous_version));
                self.records().write(ops).await?;
                Ok(None)
            }
            Some(draft) => {
                let new = NewAlert {
                    alert: w.alert.clone(),
                    previous_version: w.previous_version,
                    ticket: Some(draft.clone()),
                };
                let tickets = self.write_new_alerts(vec![new], ops).await?;
                Ok(tickets.into_iter().next().flatten())
            }
        }
    }

    /// Store the decisions of several alerts, each with the ticket it opens (numbered in
    /// the write), and `extra` operations, all in one atomic write: one transaction (and
    /// on SQLite one share of a group commit) for a page of new alerts. Returns each
    /// alert's new ticket number, in order. The caller keeps the write within the store's
    /// 100 operations: [`Store::new_alert_ops`] counts an alert's.
    pub async fn write_new_alerts(&self, alerts: Vec<NewAlert>, extra: Vec<WriteOp>) -> Result<Vec<Option<u64>>> {
        let tickets = alerts.iter().filter(|a| a.ticket.is_some()).count() as u64;
        let actions: u64 = alerts
            .iter()
            .filter_map(|a| a.ticket.as_ref())
            .map(|t| t.actions.len() as u64)
            .sum();
        let takes = [
            CounterTake::new(COUNTER, TICKET, tickets),
            CounterTake::new(COUNTER, ACTION, actions),
        ];
        let alerts = std::sync::Arc::new(alerts);
        let build = {
            let alerts = alerts.clone();
            std::sync::Arc::new(move |firsts: &[u64]| {
                let (mut ticket_id, mut action_id) = (firsts[0], firsts[1]);
                let mut ops = Vec::with_capacity(alerts.len() * 3 + extra.len());
                for a in alerts.iter() {
                    let mut alert = a.alert.clone();
                    if let Some(draft) = &a.ticket {
                        let mut ticket = draft.clone();
                        ticket.id = ticket_id;
                        alert.ticket_id = Some(ticket_id);
                        ticket_id += 1;
                        for action in &mut ticket.actions {
                            action.id = action_id;
                            action_id += 1;
                        }
                        ops.push(Self::alert_put(&alert, a.previous_version));
                        ops.extend(Self::alert_ticket_ops(&ticket));
                    } else {
                        ops.push(Self::alert_put(&alert, a.previous_version));
                    }
                }
                ops.extend(extra.iter().cloned());
                ops
            })
        };
        let firsts = self.records().write_numbered(&takes, build).await?;
        let mut next = firsts[0];
        Ok(alerts
            .iter()
            .map(|a| {
                a.ticket.as_ref().map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect())
    }

    /// One atomic write whose operations use `tickets` new ticket numbers and `actions` new
    /// action numbers, taken in the write itself (`write_numbered`; a counter with nothing
    /// to take is not touched). `build` gets the first number of each (0 for none taken)
    /// and may be called more than once. Returns those firsts.
    pub(crate) async fn write_with_numbers(
        &self,
        tickets: u64,
        actions: u64,
        build: std::sync::Arc<dyn Fn(u64, u64) -> Vec<WriteOp> + Send + Sync>,
    ) -> Result<(u64, u64)> {
        let mut takes = Vec::new();
        if tickets > 0 {
            takes.push(CounterTake::new(COUNTER, TICKET, tickets));
        }
        if actions > 0 {
            takes.push(CounterTake::new(COUNTER, ACTION, actions));
        }
        if takes.is_empty() {
            self.records().write(build(0, 0)).await?;
            return Ok((0, 0));
        }
        let split = move |firsts: &[u64]| match (tickets > 0, actions > 0) {
            (true, true) => (firsts[0], firsts[1]),
            (true, false) => (firsts[0], 0),
            _ => (0, firsts[0]),
        };
        let numbered: crate::ports::NumberedOps = std::sync::Arc::new(move |firsts: &[u64]| {
            let (t, a) = split(firsts);
            build(t, a)
        });
        let firsts = self.records().write_numbered(&takes, numbered).await?;
        Ok(split(&firsts))
    }

    /// How many store operations [`Store::write_new_alerts`] spends on `alert`.
    pub fn new_alert_ops(alert: &NewAlert) -> usize {
        1 + alert.ticket.as_ref().map_or(0, |t| 1 + t.actions.len())
    }

    /// A ticket an alert opens and its actions. Unlike `ticket_insert_ops` no check of the
    /// customer, site and ticket type: the alert path takes them from a site mapping
    /// (written with its customer and site) and from validated settings, and deskbridge
    /// never deletes customers, sites or ticket types, so once read they exist. Each check
    /// would cost 2 DynamoDB write units per alert (docs/perf.md).
    pub(crate) fn alert_ticket_ops(ticket: &Ticket) -> Vec<WriteOp> {
        let mut stored = ticket.clone();
        let actions = std::mem::take(&mut stored.actions);
        let mut ops = vec![Self::put_new(TICKET, ticket.id, &stored)];
        ops.extend(actions.iter().map(|a| put_action(ticket.id, a)));
        ops
    }

    /// Every site's name, by site id, in one walk of the site partition.
    pub async fn site_names(&self) -> Result<std::collections::HashMap<u64, String>> {
        let sites: Vec<Site> = self.list_all(Index::Primary, SITE, false, |_: &Site| true).await?;
        Ok(sites.into_iter().map(|s| (s.id, s.name)).collect())
    }

    /// Every alert uid the store knows, in one walk of the alert partition (pages of 1000):
    /// how a sync tells the new alerts of Datto's open list from the known ones without a
    /// read per alert.
    pub async fn known_alert_uids(&self) -> Result<std::collections::HashSet<String>> {
        let records = self.all_records(Query::partition(Index::Primary, ALERT)).await?;
        Ok(records.into_iter().map(|r| r.sk).collect())
    }

    /// Every site mapping, by Datto site uid, in one walk of its partition.
    pub async fn site_mappings(&self) -> Result<std::collections::HashMap<String, SiteMapping>> {
        let records = self.all_records(Query::partition(Index::Primary, SITE_MAPPING)).await?;
        records
            .iter()
            .map(|r| Ok((r.sk.clone(), Self::decode::<SiteMapping>(r)?)))
            .collect()
    }

    // ---- datto settings and site mappings ------------------------------------------------

    pub async fn datto_settings(&self) -> Result<DattoSettings> {
        match self.records().get(CONFIG, "datto").await? {
            Some(r) => Self::decode(&r),
            None => Ok(DattoSettings::default()),
        }
    }

    pub async fn save_datto_settings(&self, s: &DattoSettings) -> Result<()> {
        s.validate()?;
        if let Some(c) = s.import_customer_id {
            self.customer(c)
                .await
                .map_err(|_| DomainError::invalid("import_customer_id", format!("customer {c} does not exist")))?;
        }
        if let Some(t) = s.default_ticket_type_id {
            self.ticket_type(t).await.map_err(|_| {
                DomainError::invalid("default_ticket_type_id", format!("ticket type {t} does not exist"))
            })?;
        }
        let r = Record::new(CONFIG, "datto", serde_json::to_value(s).expect("serializable"));
        self.records()
            .write(vec![WriteOp::Put {
                record: r,
                condition: Condition::Always,
            }])
            .await?;
        Ok(())
    }

    pub async fn site_mapping(&self, datto_site_uid: &str) -> Result<Option<SiteMapping>> {
        match self.records().get(SITE_MAPPING, datto_site_uid).await? {
            Some(r) => Ok(Some(Self::decode(&r)?)),
            None => Ok(None),
        }
    }

    /// Remove a Datto site's mapping; its alerts then go where the import mode sends
    /// unmapped sites. Not found when there is none.
    pub async fn delete_site_mapping(&self, datto_site_uid: &str) -> Result<SiteMapping> {
        let m = self
            .site_mapping(datto_site_uid)
            .await?
            .ok_or_else(|| DomainError::not_found("site mapping", datto_site_uid))?;
        self.records()
            .write(vec![WriteOp::Delete {
                pk: SITE_MAPPING.to_string(),
                sk: datto_site_uid.to_string(),
                condition: Condition::Exists,
            }])
            .await?;
        Ok(m)
    }

    /// Map a Datto site onto an existing customer site (replacing any earlier mapping).
    pub async fn put_site_mapping(&self, m: &SiteMapping) -> Result<SiteMapping> {
        if m.datto_site_uid.trim().is_empty() || m.datto_site_uid.len() > 100 {
            return Err(DomainError::invalid("datto_site_uid", "must be 1 to 100 characters").into());
        }
        let site = self
            .site(m.site_id)
            .await
            .map_err(|_| DomainError::invalid("site_id", format!("site {} does not exist", m.site_id)))?;
        if site.customer_id != m.customer_id {
            return Err(DomainError::invalid(
                "site_id",
                format!(
                    "site {} belongs to customer {}, not {}",
                    m.site_id, site.customer_id, m.customer_id
                ),
            )
            .into());
        }
        let r = Record::new(
            SITE_MAPPING,
            &m.datto_site_uid,
            serde_json::to_value(m).expect("serializable"),
        );
        self.records()
            .write(vec![
                WriteOp::Put {
                    record: r,
                    condition: Condition::Always,
                },
                Self::must_exist(CUSTOMER, m.customer_id),
                Self::must_exist(SITE, m.site_id),
            ])
            .await
            .map_err(|e| missing_reference(e, &[(CUSTOMER, "customer", m.customer_id), (SITE, "site", m.site_id)]))?;
        Ok(m.clone())
    }

    /// The customer site for a Datto site: the mapping if there is one, else a site
    /// imported now by the configured mode. Concurrent calls for one Datto site import it
    /// once (the mapping is written with the new records, conditioned on its absence).
    pub async fn site_for_datto(
        &self,
        datto_site_uid: &str,
        site_name: Option<&str>,
        settings: &DattoSettings,
    ) -> Result<SiteMapping> {
        for _ in 0..5 {
            if let Some(m) = self.site_mapping(datto_site_uid).await? {
                return Ok(m);
            }
            let site = (datto_site_uid.to_string(), site_name.map(str::to_string));
            match self.import_datto_sites(&[site], settings).await {
                Ok(mut mappings) => return Ok(mappings.remove(0)),
                Err(Error::Store(StoreError::ConditionFailed { pk, .. })) if pk == SITE_MAPPING => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable("site import kept losing races".into()).into())
    }

    /// Import Datto sites `(uid, name)` that have no mapping yet, by the configured mode, in
    /// one atomic write with the site and customer numbers taken in it (3 operations a
    /// site; at most 33 sites). A site mapped meanwhile fails the whole write with
    /// `ConditionFailed` on its mapping, for the caller to look again.
    pub async fn import_datto_sites(
        &self,
        sites: &[(String, Option<String>)],
        settings: &DattoSettings,
    ) -> Result<Vec<SiteMapping>> {
        let single = match settings.import_mode {
            ImportMode::SingleCustomer => Some(settings.import_customer_id.ok_or_else(|| {
                DomainError::invalid("import_customer_id", "is required when import_mode is single_customer")
            })?),
            ImportMode::CustomerPerSite => None,
        };
        let named: Vec<(String, String)> = sites
            .iter()
            .map(|(uid, name)| {
                let name = name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("Datto site {uid}"));
                (uid.clone(), name)
            })
            .collect();
        let n = named.len() as u64;
        let takes = [
            CounterTake::new(COUNTER, SITE, n),
            CounterTake::new(COUNTER, CUSTOMER, if single.is_some() { 0 } else { n }),
        ];
        let named = std::sync::Arc::new(named);
        let mappings =
            move |named: &[(String, String)], firsts: &[u64]| -> Vec<(SiteMapping, Site, Option<Customer>)> {
                named
                    .iter()
                    .enumerate()
                    .map(|(i, (uid, name))| {
                        let site_id = firsts[0] + i as u64;
                        let customer_id = single.unwrap_or(firsts[1] + i as u64);
                        let customer = single.is_none().then(|| Customer {
                            id: customer_id,
                            name: name.clone(),
                            main_site_id: site_id,
                        });
                        let site = Site {
                            id: site_id,
                            customer_id,
                            name: name.clone(),
                            datto_site_uid: Some(uid.clone()),
                        };
                        let mapping = SiteMapping {
                            datto_site_uid: uid.clone(),
                            customer_id,
                            site_id,
                        };
                        (mapping, site, customer)
                    })
                    .collect()
            };
        let build = {
            let named = named.clone();
            std::sync::Arc::new(move |firsts: &[u64]| {
                let mut ops = Vec::new();
                if let Some(c) = single {
                    ops.push(Self::must_exist(CUSTOMER, c));
                }
                for (mapping, site, customer) in mappings(&named, firsts) {
                    if let Some(c) = &customer {
                        ops.push(Self::put_new(CUSTOMER, c.id, c));
                    }
                    ops.push(Self::put_new(SITE, site.id, &site));
                    ops.push(WriteOp::Put {
                        record: Record::new(
                            SITE_MAPPING,
                            &mapping.datto_site_uid,
                            serde_json::to_value(&mapping).expect("serializable"),
                        ),
                        condition: Condition::NotExists,
                    });
                }
                ops
            })
        };
        match self.records().write_numbered(&takes, build).await {
            Ok(firsts) => Ok(mappings(&named, &firsts).into_iter().map(|(m, _, _)| m).collect()),
            Err(StoreError::ConditionFailed { pk, sk }) if pk == SITE_MAPPING => {
                Err(StoreError::ConditionFailed { pk, sk }.into())
            }
            Err(e) => Err(match single {
                Some(c) => missing_reference(e, &[(CUSTOMER, "customer", c)]),
                None => e.into(),
            }),
        }
    }

    /// The site for alerts whose Datto site is unknown: the single customer's main site, or
    /// a customer "Datto RMM (unknown site)" created once.
    pub async fn fallback_alert_site(&self, settings: &DattoSettings) -> Result<SiteMapping> {
        if let (ImportMode::SingleCustomer, Some(c)) = (settings.import_mode, settings.import_customer_id) {
            let customer = self.customer(c).await?;
            return Ok(SiteMapping {
                datto_site_uid: String::new(),
                customer_id: c,
                site_id: customer.main_site_id,
            });
        }
        self.site_for_datto(
            "unknown",
            Some("Datto RMM (unknown site)"),
            &DattoSettings {
                import_mode: ImportMode::CustomerPerSite,
                ..settings.clone()
            },
        )
        .await
    }

    // ---- request log ------------------------------------------------------------------

    pub(crate) fn request_log_put(&self, e: &RequestLogEntry) -> WriteOp {
        Self::request_log_op(e)
    }

    /// The operation that stores one request-log entry.
    pub(crate) fn request_log_op(e: &RequestLogEntry) -> WriteOp {
        let mut r = Record::new(
            REQUEST_LOG,
            format!("{:020}#{}", e.at.timestamp_millis().max(0), e.id),
            serde_json::to_value(e).expect("serializable"),
        );
        r.expires_at = Some(e.at.timestamp() + REQUEST_LOG_DAYS * 24 * 3600);
        WriteOp::Put {
            record: r,
            condition: Condition::NotExists,
        }
    }

    /// Store one request-log entry on its own.
    pub async fn log_request(&self, e: &RequestLogEntry) -> Result<()> {
        Ok(self.records().write(vec![self.request_log_put(e)]).await?)
    }

    /// Newest entries first.
    pub async fn request_log(&self, filter: &RequestLogFilter, page: &PageRequest) -> Result<Listing<RequestLogEntry>> {
        self.list(Index::Primary, REQUEST_LOG, true, page, |e: &RequestLogEntry| {
            filter.source.as_deref().is_none_or(|s| e.source == s)
                && filter.outcome.as_deref().is_none_or(|o| e.outcome == o)
        })
        .await
    }
}

impl Store {
    /// Keep an imported site's name in step with Datto (and its customer's name, when the
    /// customer was made for that site and still carries the old name). True if changed.
    pub async fn rename_imported_site(&self, mapping: &SiteMapping, name: &str) -> Result<bool> {
        let site = self.site(mapping.site_id).await?;
        if site.datto_site_uid.as_deref() != Some(mapping.datto_site_uid.as_str()) || site.name == name {
            return Ok(false);
        }
        let old = site.name.clone();
        let mut renamed = site.clone();
        renamed.name = name.to_string();
        self.save_site(&renamed).await?;
        let customer = self.customer(mapping.customer_id).await?;
        if customer.main_site_id == site.id && customer.name == old {
            self.update_customer(
                customer.id,
                crate::domain::desk::CustomerUpdate {
                    name: Some(name.to_string()),
                    main_site_id: None,
                },
            )
            .await?;
        }
        Ok(true)
    }
}

/// What one enrichment writes besides its action: the alert's corrected facts and their
/// timeline entries, and the ticket fields that follow from them (only the ones given).
#[derive(Debug, Clone, Default)]
pub struct EnrichmentChange {
    pub facts: Option<crate::domain::alerts::AlertFacts>,
    pub timeline: Vec<crate::domain::alerts::TimelineEntry>,
    pub summary: Option<String>,
    pub priority: Option<crate::domain::desk::Priority>,
    pub asset: Option<String>,
    /// The customer site of the corrected Datto site.
    pub site: Option<SiteMapping>,
}

impl EnrichmentChange {
    fn changes_ticket(&self) -> bool {
        self.summary.is_some() || self.priority.is_some() || self.asset.is_some() || self.site.is_some()
    }

    fn apply_to(&self, t: &mut Ticket) {
        if let Some(s) = &self.summary {
            t.summary.clone_from(s);
        }
        if let Some(p) = self.priority {
            t.priority = p;
        }
        if let Some(a) = &self.asset {
            t.asset = Some(a.clone());
        }
        if let Some(m) = &self.site {
            t.customer_id = m.customer_id;
            t.site_id = m.site_id;
        }
    }
}

impl Store {
    /// Add the enrichment action, apply its corrections to the alert and the ticket and
    /// mark the alert enriched, in one transaction; a second enrichment of the same alert
    /// adds nothing.
    pub async fn record_enrichment(
        &self,
        uid: &AlertUid,
        ticket_id: u64,
        action: &crate::domain::tickets::Action,
        change: &EnrichmentChange,
    ) -> Result<()> {
        for _ in 0..super::UPDATE_ATTEMPTS {
            let Some((mut alert, v)) = self.alert(uid).await? else {
                return Err(DomainError::not_found("alert", uid).into());
            };
            if alert.enriched {
                return Ok(());
            }
            alert.enriched = true;
            if let Some(f) = &change.facts {
                alert.facts = f.clone();
            }
            alert.timeline.extend(change.timeline.iter().cloned());
            let mut ops = vec![Self::alert_put(&alert, Some(v))];
            if change.changes_ticket() {
                let (mut t, tv) = self.ticket_head(ticket_id).await?;
                change.apply_to(&mut t);
                ops.push(Self::put_over(TICKET, ticket_id, &t, tv));
                if let Some(m) = &change.site {
                    ops.push(Self::must_exist(SITE, m.site_id));
                }
            } else {
                ops.push(Self::must_exist(TICKET, ticket_id));
            }
            ops.push(put_action(ticket_id, action));
            match self.records().write(ops).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ConditionFailed { pk, .. })
                    if pk == ALERT || (pk == TICKET && change.changes_ticket()) =>
                {
                    continue
                }
                Err(e) => return Err(missing_reference(e, &[(TICKET, "ticket", ticket_id)])),
            }
        }
        Err(StoreError::Unavailable("alert kept changing".into()).into())
    }
}
