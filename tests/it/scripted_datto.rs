//! A scripted `DattoApi` for job logic tests: sites, alerts (open or resolved), an "open
//! list" that can leave alerts out, resolve calls counted, failures injectable.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deskbridge::domain::alerts::{AlertFacts, AlertUid};
use deskbridge::ports::{DattoAlert, DattoApi, DattoCallError, DattoSite, ResolveResult};
use serde_json::Value;

#[derive(Default)]
pub struct ScriptedDatto {
    pub sites: Mutex<Vec<DattoSite>>,
    /// uid → (resolved, facts)
    pub alerts: Mutex<BTreeMap<String, (bool, AlertFacts)>>,
    /// Open alerts the account list leaves out (Datto's incomplete lists).
    pub hidden_from_list: Mutex<HashSet<String>>,
    pub resolves: AtomicUsize,
    /// The uid of every resolve call, in order (a uid twice is a double resolve).
    pub resolved_uids: Mutex<Vec<String>>,
    pub fail_next: AtomicUsize,
    pub requests: AtomicU64,
    /// What `read_headroom` answers (set by the constructors to plenty).
    pub headroom: AtomicU64,
}

impl ScriptedDatto {
    pub fn with_open(uid: &str) -> Arc<Self> {
        let d = ScriptedDatto {
            headroom: AtomicU64::new(500),
            ..Default::default()
        };
        d.alerts
            .lock()
            .unwrap()
            .insert(uid.to_string(), (false, AlertFacts::default()));
        Arc::new(d)
    }

    /// Sites and open alerts from the Datto fixtures (two site pages, one alert page).
    pub fn from_fixtures() -> Arc<Self> {
        let d = ScriptedDatto {
            headroom: AtomicU64::new(500),
            ..Default::default()
        };
        for page in ["sites-page-0.json", "sites-page-1.json"] {
            let v = crate::desk::fixture_json(page);
            for s in v["sites"].as_array().unwrap() {
                d.sites.lock().unwrap().push(DattoSite {
                    uid: s["uid"].as_str().unwrap().into(),
                    name: s["name"].as_str().unwrap().into(),
                });
            }
        }
        let v = crate::desk::fixture_json("alerts-open-page-0.json");
        for a in v["alerts"].as_array().unwrap() {
            d.alerts
                .lock()
                .unwrap()
                .insert(a["alertUid"].as_str().unwrap().into(), (false, facts_of(a)));
        }
        Arc::new(d)
    }

    pub fn resolve_in_datto(&self, uid: &str) {
        self.alerts.lock().unwrap().get_mut(uid).unwrap().0 = true;
    }

    fn fail(&self) -> Result<(), DattoCallError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err(DattoCallError {
                retryable: true,
                message: "429 Too Many Requests".into(),
            });
        }
        Ok(())
    }
}

/// The facts a polled alert carries (no message: the API has none).
pub fn facts_of(a: &Value) -> AlertFacts {
    let s = |v: &Value| v.as_str().map(str::to_string);
    AlertFacts {
        message: None,
        priority: s(&a["priority"]),
        device_uid: s(&a["alertSourceInfo"]["deviceUid"]),
        device_hostname: s(&a["alertSourceInfo"]["deviceName"]),
        site_uid: s(&a["alertSourceInfo"]["siteUid"]),
        site_name: s(&a["alertSourceInfo"]["siteName"]),
        diagnostics: s(&a["diagnostics"]),
        context: Some(a["alertContext"].clone()),
        ..Default::default()
    }
}

#[async_trait]
impl DattoApi for ScriptedDatto {
    async fn sites(&self) -> Result<Vec<DattoSite>, DattoCallError> {
        self.fail()?;
        Ok(self.sites.lock().unwrap().clone())
    }
    async fn open_alerts(&self) -> Result<Vec<DattoAlert>, DattoCallError> {
        self.fail()?;
        let hidden = self.hidden_from_list.lock().unwrap().clone();
        Ok(self
            .alerts
            .lock()
            .unwrap()
            .iter()
            .filter(|(uid, (resolved, _))| !resolved && !hidden.contains(*uid))
            .map(|(uid, (_, facts))| DattoAlert {
                uid: AlertUid::parse("uid", uid).unwrap(),
                resolved: false,
                facts: facts.clone(),
            })
            .collect())
    }
    async fn alert(&self, uid: &AlertUid) -> Result<Option<DattoAlert>, DattoCallError> {
        self.fail()?;
        Ok(self.alerts.lock().unwrap().get(uid.as_str()).map(|(r, f)| DattoAlert {
            uid: uid.clone(),
            resolved: *r,
            facts: f.clone(),
        }))
    }
    async fn resolve(&self, uid: &AlertUid) -> Result<ResolveResult, DattoCallError> {
        self.fail()?;
        self.resolves.fetch_add(1, Ordering::SeqCst);
        self.resolved_uids.lock().unwrap().push(uid.to_string());
        match self.alerts.lock().unwrap().get_mut(uid.as_str()) {
            Some((r, _)) if *r => Ok(ResolveResult::AlreadyResolved),
            Some((r, _)) => {
                *r = true;
                Ok(ResolveResult::Resolved)
            }
            None => Ok(ResolveResult::Unknown),
        }
    }
    async fn device(&self, device_uid: &str) -> Result<Option<Value>, DattoCallError> {
        self.fail()?;
        Ok(Some(
            serde_json::json!({"uid": device_uid, "hostname": "ACME-DC01", "operatingSystem": "Windows Server 2022",
            "intIpAddress": "10.0.0.10", "lastLoggedInUser": "ACME\\admin", "online": true}),
        ))
    }
    async fn read_headroom(&self) -> Result<Option<i64>, DattoCallError> {
        self.fail()?;
        Ok(Some(self.headroom.load(Ordering::SeqCst) as i64))
    }
    async fn check(&self) -> Result<String, DattoCallError> {
        self.fail()?;
        Ok("Example MSP".into())
    }
    fn requests_used(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A connector handing out one scripted Datto.
pub struct ScriptedConnect(pub Arc<ScriptedDatto>);

#[async_trait]
impl deskbridge::ports::DattoConnect for ScriptedConnect {
    async fn connect(&self) -> Result<Option<Arc<dyn DattoApi>>, DattoCallError> {
        Ok(Some(self.0.clone()))
    }
}
