//! Enrichment of new alert tickets: shortly after creation, off the webhook's path, the
//! alert's diagnostics and context and the device's details from the Datto API become one
//! system action. Failures are retried by the queue and never block the ticket.

use serde_json::Value;

use super::{Failure, JobError};
use crate::domain::alerts::AlertUid;
use crate::domain::tickets::{Action, ActionKind};
use crate::intake::EnrichRequest;
use crate::ports::DattoApi;
use crate::store::Store;

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
    let facts = remote.as_ref().map(|a| &a.facts).unwrap_or(&alert.facts);
    let device_uid = facts.device_uid.clone().or(alert.facts.device_uid.clone());
    let device = match device_uid {
        Some(d) => datto.device(&d).await?,
        None => None,
    };
    let note = enrichment_note(facts.diagnostics.as_deref(), facts.context.as_ref(), device.as_ref());
    let (id, at) = store.new_action_stamp().await?;
    let action = Action {
        id,
        at,
        kind: ActionKind::System,
        agent_id: None,
        note,
    };
    store.record_enrichment(&uid, req.ticket_id, &action).await?;
    Ok(())
}
