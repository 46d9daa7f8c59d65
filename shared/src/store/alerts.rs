//! Repository of Datto alerts, Datto settings, site mappings and the intake request log;
//! an alert and its ticket are always written in one transaction on the alert's version.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::desk::{missing_reference, CUSTOMER, SITE};
use super::tickets::{put_action, TICKET};
use super::{Listing, PageRequest, Store};
use crate::domain::alerts::{Alert, AlertUid};
use crate::domain::datto::{DattoSettings, ImportMode, SiteMapping};
use crate::domain::desk::{Customer, Site};
use crate::domain::tickets::{CloseOrigin, Ticket};
use crate::domain::DomainError;
use crate::error::{Error, Result};
use crate::ports::{Condition, Index, Record, StoreError, WriteOp};

pub(crate) const ALERT: &str = "alert";
const CONFIG: &str = "config";
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

    /// Keep (up to 16 KiB of) the body that could not be understood.
    pub fn keep_raw(&mut self, body: &[u8]) {
        let cut = &body[..body.len().min(16 * 1024)];
        self.raw_body = Some(String::from_utf8_lossy(cut).into_owned());
    }
}

/// Filters of the request log.
#[derive(Debug, Clone, Default)]
pub struct RequestLogFilter {
    pub source: Option<String>,
    pub outcome: Option<String>,
}

/// How an alert's decision is to be stored.
pub struct AlertWrite<'a> {
    pub alert: &'a Alert,
    /// The version read before deciding; `None` when the alert was new.
    pub previous_version: Option<u64>,
    /// A new ticket to create with the alert.
    pub new_ticket: Option<&'a Ticket>,
    /// An open ticket to close because Datto resolved the alert.
    pub close_ticket: Option<u64>,
    /// Log entry stored in the same transaction.
    pub log: Option<&'a RequestLogEntry>,
    /// Further writes of the same decision (noise control: the device's state, tickets the
    /// alert joined, reopened or closed).
    pub extra: Vec<WriteOp>,
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

    /// Store an alert decision atomically. A lost race on the alert comes back as
    /// `ConditionFailed` on the alert's key, for the caller to re-read and decide again.
    pub async fn write_alert(&self, w: AlertWrite<'_>) -> std::result::Result<(), Error> {
        let mut ops = vec![Self::alert_put(w.alert, w.previous_version)];
        if let Some(t) = w.new_ticket {
            ops.extend(self.ticket_insert_ops(t));
        }
        if let Some(tid) = w.close_ticket {
            let (mut t, v): (Ticket, u64) = self.ticket_head(tid).await?;
            if t.is_open() {
                let (action_id, now) = self.new_action_stamp().await?;
                let action = t.close(action_id, None, "", CloseOrigin::Datto, now)?;
                ops.push(Self::put_over(TICKET, tid, &t, v));
                ops.push(put_action(tid, &action));
            }
        }
        ops.extend(w.extra);
        if let Some(log) = w.log {
            ops.push(self.request_log_put(log));
        }
        self.records().write(ops).await?;
        Ok(())
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
            let name = site_name
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| format!("Datto site {datto_site_uid}"));
            let site_id = self.next_id(SITE).await?;
            let mut ops = Vec::new();
            let customer_id = match settings.import_mode {
                ImportMode::SingleCustomer => {
                    let c = settings.import_customer_id.ok_or_else(|| {
                        DomainError::invalid("import_customer_id", "is required when import_mode is single_customer")
                    })?;
                    ops.push(Self::must_exist(CUSTOMER, c));
                    c
                }
                ImportMode::CustomerPerSite => {
                    let c = self.next_id(CUSTOMER).await?;
                    ops.push(Self::put_new(
                        CUSTOMER,
                        c,
                        &Customer {
                            id: c,
                            name: name.clone(),
                            main_site_id: site_id,
                        },
                    ));
                    c
                }
            };
            let site = Site {
                id: site_id,
                customer_id,
                name,
                datto_site_uid: Some(datto_site_uid.to_string()),
            };
            let mapping = SiteMapping {
                datto_site_uid: datto_site_uid.to_string(),
                customer_id,
                site_id,
            };
            ops.push(Self::put_new(SITE, site_id, &site));
            ops.push(WriteOp::Put {
                record: Record::new(
                    SITE_MAPPING,
                    datto_site_uid,
                    serde_json::to_value(&mapping).expect("serializable"),
                ),
                condition: Condition::NotExists,
            });
            match self.records().write(ops).await {
                Ok(()) => return Ok(mapping),
                Err(StoreError::ConditionFailed { pk, .. }) if pk == SITE_MAPPING => continue,
                Err(e) => {
                    return Err(missing_reference(e, &[(CUSTOMER, "customer", customer_id)]));
                }
            }
        }
        Err(StoreError::Unavailable("site import kept losing races".into()).into())
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

impl Store {
    /// Add the enrichment action and mark the alert enriched, in one transaction; a second
    /// enrichment of the same alert adds nothing.
    pub async fn record_enrichment(
        &self,
        uid: &AlertUid,
        ticket_id: u64,
        action: &crate::domain::tickets::Action,
    ) -> Result<()> {
        for _ in 0..super::UPDATE_ATTEMPTS {
            let Some((mut alert, v)) = self.alert(uid).await? else {
                return Err(DomainError::not_found("alert", uid).into());
            };
            if alert.enriched {
                return Ok(());
            }
            alert.enriched = true;
            let ops = vec![
                Self::alert_put(&alert, Some(v)),
                Self::must_exist(TICKET, ticket_id),
                put_action(ticket_id, action),
            ];
            match self.records().write(ops).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ConditionFailed { pk, .. }) if pk == ALERT => continue,
                Err(e) => return Err(missing_reference(e, &[(TICKET, "ticket", ticket_id)])),
            }
        }
        Err(StoreError::Unavailable("alert kept changing".into()).into())
    }
}
