//! Alert noise control, the pure half: settings, routing rules, maintenance windows, and the
//! decisions that relate, reopen, hold or suppress alert tickets. No I/O; the store persists it.
//!
//! The pieces, in the order a raised alert meets them:
//! - [`rules`]: the ordered routing rules; the first match routes (type, team, priority,
//!   custom fields) or suppresses.
//! - [`maintenance`]: one-off and weekly windows per customer, site or device.
//! - [`monitor`]: which device and which Datto monitor an alert comes from ([`MonitorKey`]).
//! - [`decide`]: the per-device state ([`DeviceNoise`]) and the decisions for a raise, a
//!   resolve, an agent's close or reopen, and the passing of time.
//! - [`settings`]: the windows and thresholds those decisions use.
//!
//! Every decision carries a [`DecisionLine`]: a sentence for the alert's timeline and a
//! short outcome for the request log.

pub mod decide;
pub mod maintenance;
pub mod monitor;
pub mod rules;
pub mod settings;

#[cfg(test)]
mod property;

pub use decide::{
    agent_closed, agent_reopened, decide_raise, decide_resolve, settle, AlertProgress, DeviceNoise, HeldAlert,
    MonitorHistory, NoisePolicy, NoiseTicket, RaiseDecision, RaisePlan, RaisedAlert, Recorded, ResolveDecision,
    Resolved, Settled, Suppression, TicketAlert, TicketEffect,
};
pub use maintenance::{
    active_window, ActiveMaintenance, MaintenanceSubject, MaintenanceWindow, TimeZoneName, WindowSchedule, WindowScope,
};
pub use monitor::{DeviceKey, MonitorId, MonitorKey};
pub use rules::{
    evaluate, preview, routed_ticket, validate_rules, Route, RoutedTicket, RoutingRule, RuleAction, RuleDecision,
    RuleInput, RuleMatch, RulePreview, RuleRef, TicketDefaults,
};
pub use settings::{FlappingSettings, MaintenanceEnd, NoiseSettings, RecurringMode};

use serde::{Deserialize, Serialize};

/// What a decision says: a sentence for the alert's timeline, and a short outcome for the
/// request log ("related to ticket 12", "flapping: held").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionLine {
    pub sentence: String,
    pub outcome: String,
}

impl DecisionLine {
    fn new(outcome: impl Into<String>, sentence: impl Into<String>) -> DecisionLine {
        DecisionLine {
            sentence: sentence.into(),
            outcome: outcome.into(),
        }
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `21st`, ...
pub fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// `1 minute`, `5 minutes`, `2 hours`, `1 hour 30 minutes`, for sentences.
pub fn minutes_text(minutes: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    match (minutes / 60, minutes % 60) {
        (0, m) => plural(m, "minute"),
        (h, 0) => plural(h, "hour"),
        (h, m) => format!("{} {}", plural(h, "hour"), plural(m, "minute")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_read_as_english() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
            .into_iter()
            .map(ordinal)
            .collect();
        assert_eq!(
            got,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]
        );
    }

    #[test]
    fn durations_read_as_english() {
        assert_eq!(minutes_text(1), "1 minute");
        assert_eq!(minutes_text(15), "15 minutes");
        assert_eq!(minutes_text(60), "1 hour");
        assert_eq!(minutes_text(180), "3 hours");
        assert_eq!(minutes_text(90), "1 hour 30 minutes");
    }
}
