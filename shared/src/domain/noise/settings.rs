//! The noise-control settings: the related and recurring windows, the recurrence mode, the
//! flapping threshold and quiet period, and what the end of a maintenance window does.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::domain::DomainError;

/// What a recurring alert does to the closed ticket of its monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecurringMode {
    /// Reopen the closed ticket with an action saying it recurred.
    #[default]
    Reopen,
    /// Open a new ticket linked to the closed one as its child.
    Child,
}

/// What happens to an alert held by a maintenance window that is still open when the
/// window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceEnd {
    /// Decide about it then, as if it had just been raised: it opens (or joins) a ticket.
    #[default]
    OpenTicket,
    /// Leave it recorded and visible, without a ticket.
    Nothing,
}

/// When a monitor counts as flapping, and when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct FlappingSettings {
    /// A monitor raised this many times within `window_minutes` flaps. Datto gives every
    /// re-raise a new alert uid after a resolve, so each raise is one raise/resolve cycle.
    /// 0 turns flapping detection off.
    pub cycles: u32,
    pub window_minutes: u32,
    /// A flapping monitor is held (no reopen, no close) until it has had no raise and no
    /// resolve for this long.
    pub quiet_minutes: u32,
}

impl Default for FlappingSettings {
    fn default() -> Self {
        FlappingSettings {
            cycles: 5,
            window_minutes: 30,
            quiet_minutes: 60,
        }
    }
}

/// The noise-control settings of the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct NoiseSettings {
    /// A new alert for a device joins the device's open alert ticket opened (or reopened)
    /// at most this long ago. 0 turns relating off.
    pub related_window_minutes: u32,
    /// The same device + monitor raised again at most this long after its ticket closed
    /// recurs. 0 turns recurrence off.
    pub recurring_window_minutes: u32,
    pub recurring_mode: RecurringMode,
    pub flapping: FlappingSettings,
    pub maintenance_end: MaintenanceEnd,
}

impl Default for NoiseSettings {
    fn default() -> Self {
        NoiseSettings {
            related_window_minutes: 15,
            recurring_window_minutes: 180,
            recurring_mode: RecurringMode::Reopen,
            flapping: FlappingSettings::default(),
            maintenance_end: MaintenanceEnd::OpenTicket,
        }
    }
}

/// The longest related window (a day) and recurring window (a week), in minutes.
pub const RELATED_WINDOW_MAX: u32 = 24 * 60;
pub const RECURRING_WINDOW_MAX: u32 = 7 * 24 * 60;
/// The most raises a flapping threshold may ask for.
pub const FLAPPING_CYCLES_MAX: u32 = 100;
/// The longest flapping window and quiet period (a day), in minutes.
pub const FLAPPING_MINUTES_MAX: u32 = 24 * 60;

fn within(field: &str, value: u32, min: u32, max: u32) -> Result<(), DomainError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ))
    }
}

impl NoiseSettings {
    /// Refuse values outside the ranges, naming the field (`flapping.cycles`).
    pub fn validate(&self) -> Result<(), DomainError> {
        within(
            "related_window_minutes",
            self.related_window_minutes,
            0,
            RELATED_WINDOW_MAX,
        )?;
        within(
            "recurring_window_minutes",
            self.recurring_window_minutes,
            0,
            RECURRING_WINDOW_MAX,
        )?;
        let f = &self.flapping;
        if f.cycles == 1 {
            return Err(DomainError::invalid(
                "flapping.cycles",
                "must be 0 (off) or at least 2: one raise is not flapping",
            ));
        }
        within("flapping.cycles", f.cycles, 0, FLAPPING_CYCLES_MAX)?;
        within("flapping.window_minutes", f.window_minutes, 1, FLAPPING_MINUTES_MAX)?;
        within("flapping.quiet_minutes", f.quiet_minutes, 1, FLAPPING_MINUTES_MAX)?;
        Ok(())
    }

    pub fn related_window(&self) -> Option<Duration> {
        (self.related_window_minutes > 0).then(|| Duration::minutes(self.related_window_minutes.into()))
    }

    pub fn recurring_window(&self) -> Option<Duration> {
        (self.recurring_window_minutes > 0).then(|| Duration::minutes(self.recurring_window_minutes.into()))
    }
}

impl FlappingSettings {
    pub fn enabled(&self) -> bool {
        self.cycles > 0
    }
    pub fn window(&self) -> Duration {
        Duration::minutes(self.window_minutes.into())
    }
    pub fn quiet(&self) -> Duration {
        Duration::minutes(self.quiet_minutes.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones_and_valid() {
        let s = NoiseSettings::default();
        assert_eq!(s.related_window_minutes, 15);
        assert_eq!(s.recurring_window_minutes, 180);
        assert_eq!(s.recurring_mode, RecurringMode::Reopen);
        assert_eq!(s.maintenance_end, MaintenanceEnd::OpenTicket);
        // "10 times in 30 minutes" must count as flapping.
        assert!(s.flapping.cycles <= 10 && s.flapping.window_minutes >= 30);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn an_empty_object_means_the_defaults_and_a_partial_one_keeps_the_rest() {
        let s: NoiseSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, NoiseSettings::default());
        let s: NoiseSettings =
            serde_json::from_str(r#"{"recurring_mode": "child", "flapping": {"cycles": 8}}"#).unwrap();
        assert_eq!(s.recurring_mode, RecurringMode::Child);
        assert_eq!(s.flapping.cycles, 8);
        assert_eq!(s.flapping.window_minutes, 30);
        assert_eq!(s.related_window_minutes, 15);
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        type Spoil = fn(&mut NoiseSettings);
        let cases: [(&str, Spoil); 7] = [
            ("related_window_minutes", |s| s.related_window_minutes = 24 * 60 + 1),
            ("recurring_window_minutes", |s| {
                s.recurring_window_minutes = 7 * 24 * 60 + 1
            }),
            ("flapping.cycles", |s| s.flapping.cycles = 1),
            ("flapping.cycles", |s| s.flapping.cycles = 101),
            ("flapping.window_minutes", |s| s.flapping.window_minutes = 0),
            ("flapping.quiet_minutes", |s| s.flapping.quiet_minutes = 0),
            ("flapping.quiet_minutes", |s| s.flapping.quiet_minutes = 24 * 60 + 1),
        ];
        for (field, spoil) in cases {
            let mut s = NoiseSettings::default();
            spoil(&mut s);
            match s.validate() {
                Err(DomainError::Validation { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected a validation error, got {other:?}"),
            }
        }
    }

    #[test]
    fn zero_turns_relating_recurrence_and_flapping_off() {
        let s = NoiseSettings {
            related_window_minutes: 0,
            recurring_window_minutes: 0,
            flapping: FlappingSettings {
                cycles: 0,
                ..FlappingSettings::default()
            },
            ..NoiseSettings::default()
        };
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.related_window(), None);
        assert_eq!(s.recurring_window(), None);
        assert!(!s.flapping.enabled());
        assert_eq!(NoiseSettings::default().related_window(), Some(Duration::minutes(15)));
    }
}
