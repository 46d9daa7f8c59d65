//! Repository of alert noise control: its settings, the ordered routing rules (one record,
//! so the order changes atomically), maintenance windows, and the per-device state.
//!
//! Keys: settings at `config/noise`, rules at `config/noise-rules`, a window at
//! `noise-window/<id>`, a device's state (`DeviceNoise`) at `noise-device/<device key>`.
//! The device state is always written in the transaction of the alert decision it records.

use serde::{Deserialize, Serialize};

use super::{Store, UPDATE_ATTEMPTS};
use crate::domain::noise::{validate_rules, DeviceKey, DeviceNoise, MaintenanceWindow, NoiseSettings, RoutingRule};
use crate::domain::DomainError;
use crate::error::Result;
use crate::ports::{Condition, Index, Query, Record, StoreError, WriteOp};

const CONFIG: &str = "config";
const SETTINGS_SK: &str = "noise";
const RULES_SK: &str = "noise-rules";
pub(crate) const WINDOW: &str = "noise-window";
pub(crate) const DEVICE_NOISE: &str = "noise-device";
/// The rule list is one record; DynamoDB items hold at most 400 KB.
const RULES_RECORD_MAX: usize = 350 * 1024;

/// The stored rule list with its version (0 when none was ever saved).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleList {
    pub rules: Vec<RoutingRule>,
    #[serde(skip)]
    pub version: u64,
}

/// Everything a decision reads besides the device's state.
#[derive(Debug, Clone, Default)]
pub struct NoiseConfig {
    pub settings: NoiseSettings,
    pub rules: Vec<RoutingRule>,
    pub windows: Vec<MaintenanceWindow>,
}

impl NoiseConfig {
    /// False when noise control can decide nothing but "open a ticket": no relating,
    /// recurring or flapping, no routing rule, no maintenance window. Intake then decides
    /// by `alerts::apply` alone (and keeps no device state for new alerts).
    pub fn is_active(&self) -> bool {
        let s = &self.settings;
        s.related_window().is_some()
            || s.recurring_window().is_some()
            || s.flapping.enabled()
            || !self.rules.is_empty()
            || !self.windows.is_empty()
    }

    pub fn policy(&self) -> crate::domain::noise::NoisePolicy<'_> {
        crate::domain::noise::NoisePolicy {
            settings: &self.settings,
            rules: &self.rules,
            windows: &self.windows,
        }
    }
}

impl Store {
    // ---- settings -------------------------------------------------------------------

    pub async fn noise_settings(&self) -> Result<NoiseSettings> {
        match self.records().get(CONFIG, SETTINGS_SK).await? {
            Some(r) => Self::decode(&r),
            None => Ok(NoiseSettings::default()),
        }
    }

    pub async fn save_noise_settings(&self, s: &NoiseSettings) -> Result<NoiseSettings> {
        s.validate()?;
        let r = Record::new(CONFIG, SETTINGS_SK, serde_json::to_value(s).expect("serializable"));
        self.records()
            .write(vec![WriteOp::Put {
                record: r,
                condition: Condition::Always,
            }])
            .await?;
        Ok(*s)
    }

    /// Settings, rules and windows, read once per intake.
    pub async fn noise_config(&self) -> Result<NoiseConfig> {
        Ok(NoiseConfig {
            settings: self.noise_settings().await?,
            rules: self.noise_rules().await?.rules,
            windows: self.maintenance_windows().await?,
        })
    }

    // ---- routing rules ----------------------------------------------------------------

    pub async fn noise_rules(&self) -> Result<RuleList> {
        match self.records().get(CONFIG, RULES_SK).await? {
            Some(r) => {
                let mut l: RuleList = Self::decode(&r)?;
                l.version = r.version;
                Ok(l)
            }
            None => Ok(RuleList::default()),
        }
    }

    /// Change the rule list with `change` and store it validated, on the version read;
    /// retried when another writer won.
    pub async fn change_noise_rules<R>(
        &self,
        mut change: impl FnMut(&mut Vec<RoutingRule>) -> Result<R>,
    ) -> Result<(Vec<RoutingRule>, R)> {
        for _ in 0..UPDATE_ATTEMPTS {
            let mut list = self.noise_rules().await?;
            let out = change(&mut list.rules)?;
            validate_rules(&list.rules)?;
            let data = serde_json::to_value(&list).expect("serializable");
            if data.to_string().len() > RULES_RECORD_MAX {
                return Err(
                    DomainError::invalid("rules", "the rule list is too large to store (at most 350 KiB)").into(),
                );
            }
            let mut r = Record::new(CONFIG, RULES_SK, data);
            r.version = list.version + 1;
            let condition = match list.version {
                0 => Condition::NotExists,
                v => Condition::VersionIs(v),
            };
            match self.records().write(vec![WriteOp::Put { record: r, condition }]).await {
                Ok(()) => return Ok((list.rules, out)),
                Err(StoreError::ConditionFailed { pk, sk }) if pk == CONFIG && sk == RULES_SK => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable("the routing rules are changing too fast; try again".into()).into())
    }

    // ---- maintenance windows ----------------------------------------------------------

    pub async fn maintenance_windows(&self) -> Result<Vec<MaintenanceWindow>> {
        self.list_all(Index::Primary, WINDOW, false, |_: &MaintenanceWindow| true)
            .await
    }

    pub async fn maintenance_window(&self, id: u64) -> Result<MaintenanceWindow> {
        Ok(self.fetch(WINDOW, "maintenance window", id).await?.0)
    }

    /// Store a new window under a fresh id.
    pub async fn create_maintenance_window(&self, mut w: MaintenanceWindow) -> Result<MaintenanceWindow> {
        w.validate()?;
        w.id = self.next_id(WINDOW).await?;
        self.records().write(vec![Self::put_new(WINDOW, w.id, &w)]).await?;
        Ok(w)
    }

    pub async fn update_maintenance_window(&self, id: u64, w: MaintenanceWindow) -> Result<MaintenanceWindow> {
        let w = MaintenanceWindow { id, ..w };
        w.validate()?;
        let (stored, ()) = self
            .update(WINDOW, "maintenance window", id, |cur: &mut MaintenanceWindow, _| {
                *cur = w.clone();
                Ok(())
            })
            .await?;
        Ok(stored)
    }

    pub async fn delete_maintenance_window(&self, id: u64) -> Result<()> {
        self.fetch::<MaintenanceWindow>(WINDOW, "maintenance window", id)
            .await?;
        self.records()
            .write(vec![WriteOp::Delete {
                pk: WINDOW.to_string(),
                sk: super::sk_id(id),
                condition: Condition::Exists,
            }])
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed { .. } => DomainError::not_found("maintenance window", id).into(),
                e => e.into(),
            })
    }

    // ---- per-device state -------------------------------------------------------------

    /// A device's noise state and its version (0: never stored).
    pub async fn device_noise(&self, key: &DeviceKey) -> Result<(DeviceNoise, u64)> {
        match self.records().get(DEVICE_NOISE, key.as_str()).await? {
            Some(r) => Ok((Self::decode(&r)?, r.version)),
            None => Ok((DeviceNoise::new(key.clone()), 0)),
        }
    }

    /// The write that stores `state` over `version` (0: create).
    pub fn device_noise_put(state: &DeviceNoise, version: u64) -> WriteOp {
        let mut record = Record::new(
            DEVICE_NOISE,
            state.device.as_str(),
            serde_json::to_value(state).expect("serializable"),
        );
        record.version = version + 1;
        WriteOp::Put {
            record,
            condition: match version {
                0 => Condition::NotExists,
                v => Condition::VersionIs(v),
            },
        }
    }

    /// Every device state that time can still change: a flapping monitor or a held alert.
    pub async fn unsettled_devices(&self) -> Result<Vec<DeviceKey>> {
        let mut out = Vec::new();
        for r in self.all_records(Query::partition(Index::Primary, DEVICE_NOISE)).await? {
            let d: DeviceNoise = Self::decode(&r)?;
            if !d.held.is_empty() || d.monitors.values().any(|m| m.flapping_since.is_some()) {
                out.push(d.device);
            }
        }
        Ok(out)
    }
}

impl Store {
    /// The write that stores a changed ticket (without its actions) over `version`.
    pub(crate) fn ticket_put(t: &crate::domain::tickets::Ticket, version: u64) -> WriteOp {
        let mut stored = t.clone();
        stored.actions.clear();
        Self::put_over(super::tickets::TICKET, t.id, &stored, version)
    }

    /// The write that adds one action to a ticket.
    pub(crate) fn action_put(ticket_id: u64, a: &crate::domain::tickets::Action) -> WriteOp {
        super::tickets::put_action(ticket_id, a)
    }
}
