//! Enrichment of new alert tickets: shortly after creation, off the webhook's path, the
//! alert's diagnostics and context and the device's details from the Datto API become one
//! system action. Failures are retried by the queue and never block the ticket.

use serde_json::Value;

use super::{Failure, JobError};
use crate::datto::api::device_facts;
use crate::domain::alerts::{correct_unknown, AlertUid, Corrected, Decision, FactField, TimelineEntry};
use crate::domain::desk::Priority;
use crate::domain::tickets::{Action, ActionKind};
use crate::intake::EnrichRequest;
use crate::ports::DattoApi;
use crate::store::{EnrichmentChange, Store};

fn line(out: &mut String, label: &str, v: Option<&Value>) {
    let text = match v {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Bool(b)) => {
            if *b {
                "yes".into()
            } else {
                "no".into()
            }
        }
        Some(Value::Number(n)) => n.to_string(),
        _ => return,
    };
    out.push_str(&format!("{label}: {text}\n"));
}

/// The note of the enrichment action.
pub fn enrichment_note(diagnostics: Option<&str>, context: Option<&Value>, device: Option<&Value>) -> String {
    let mut out = String::from("Details from Datto RMM\n");
    if let Some(d) = diagnostics.filter(|d| !d.trim().is_empty()) {
        out.push_str(&format!("Diagnostics:\n{}\n", d.trim_end()));
    }
    if let Some(Value::Object(ctx)) = context {
        out.push_str("Context:\n");
        for (k, v) in ctx {
            let shown = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            out.push_str(&format!("  {k}: {shown}\n"));
        }
    }
    if let Some(dev) = device {
        out.push_str("Device:\n");
        for (label, key) in [
            ("  Hostname", "hostname"),
            ("  Description", "description"),
            ("  Operating system", "operatingSystem"),
            ("  Internal IP", "intIpAddress"),
            ("  External IP", "extIpAddress"),
            ("  Last user", "lastLoggedInUser"),
            ("  Online", "online"),
            ("  Reboot required", "rebootRequired"),
            ("  Web remote", "webRemoteUrl"),
        ] {
            line(&mut out, label, dev.get(key));
        }
    }
    out
}

/// Handle one `alert-enrich` message; does nothing when the ticket was enriched already.
/// Fields that arrived unknown (placeholders, blanks, absent) are corrected from the API
/// (`correct_unknown`): the ticket moves to the corrected site's customer, takes the API's
/// priority, device and summary, and the alert's timeline names each correction. Values
/// that arrived real are never touched.
pub async fn enrich(store: &Store, datto: &dyn DattoApi, body: &str) -> Result<(), JobError> {
    let req: EnrichRequest = serde_json::from_str(body).map_err(|e| JobError::bad_message("alert-enrich", e))?;
    let uid = AlertUid::parse("alert_uid", &req.alert_uid).map_err(|e| JobError::bad_message("alert-enrich", e))?;
    let Some((alert, _)) = store.alert(&uid).await? else {
        return Err(JobError::Permanent(Failure::Gone(format!("alert {uid} is unknown"))));
    };
    if alert.enriched {
        return Ok(());
    }
    let remote = datto.alert(&uid).await?;
    let api_facts = remote.as_ref().map(|a| &a.facts).unwrap_or(&alert.facts);
    let device_uid = alert.facts.device_uid.clone().or(api_facts.device_uid.clone());
    let device = match device_uid {
        Some(d) => datto.device(&d).await?,
        None => None,
    };
    let corrected = remote
        .as_ref()
        .map(|r| correct_unknown(&alert.facts, &r.facts, device.as_ref().and_then(device_facts).as_ref()));
    let change = match &corrected {
        Some(c) if !c.corrections.is_empty() => ticket_change(store, c).await?,
        _ => EnrichmentChange::default(),
    };
    let note = enrichment_note(
        api_facts.diagnostics.as_deref(),
        api_facts.context.as_ref(),
        device.as_ref(),
    );
    let (id, at) = store.new_action_stamp().await?;
    let action = Action {
        id,
        at,
        kind: ActionKind::System,
        agent_id: None,
        note,
    };
    store.record_enrichment(&uid, req.ticket_id, &action, &change).await?;
    Ok(())
}

/// What the corrections change: the alert's facts, one timeline entry per corrected field,
/// and the ticket fields made from them (site through the mapping or the import).
async fn ticket_change(store: &Store, c: &Corrected) -> Result<EnrichmentChange, JobError> {
    let settings = store.datto_settings().await?;
    let now = store.clock().now();
    let mut change = EnrichmentChange {
        facts: Some(c.facts.clone()),
        summary: c.summary.clone(),
        ..Default::default()
    };
    for corr in &c.corrections {
        change.timeline.push(TimelineEntry {
            at: now,
            source: "enrichment".into(),
            event: format!("corrected {corr}"),
            decision: Decision::FieldsCorrected,
            note: None,
        });
        match corr.field {
            FactField::Priority => {
                change.priority = Some(settings.priority_map.map(Some(&corr.value), Priority::Medium));
            }
            FactField::DeviceHostname => change.asset = Some(corr.value.clone()),
            FactField::SiteUid => {
                let m = store
                    .site_for_datto(&corr.value, c.facts.site_name.as_deref(), &settings)
                    .await?;
                change.site = Some(m);
            }
            FactField::Message | FactField::DeviceUid | FactField::SiteName => {}
        }
    }
    Ok(change)
}
