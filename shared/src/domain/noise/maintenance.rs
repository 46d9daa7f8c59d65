//! Maintenance windows: per customer, site or device; one-off or weekly recurring, in an
//! IANA time zone. Alerts inside an active window open no ticket.
//!
//! Times are local wall-clock times of the window's zone, turned into instants the way
//! calendars do: a local time that a DST change skips (02:30 on the spring-forward night in
//! New York) means the instant it would have been with the offset before the change (03:30
//! new time); one that occurs twice (01:30 on the fall-back night) means the first. A
//! weekly window's duration is elapsed time, so a 4-hour window across a change still lasts
//! 4 hours. Windows are half-open: active from the start, over at the end.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::{required_text, DomainError};

/// The longest one-off window (days).
pub const ONE_OFF_DAYS_MAX: i64 = 366;
/// A week, in minutes: the longest weekly window.
pub const WEEK_MINUTES: u32 = 7 * 24 * 60;
const NAME_MAX: usize = 100;
const DEVICE_MAX: usize = 200;

/// An IANA time zone (`Europe/London`), kept by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(Tz);

impl TimeZoneName {
    pub const UTC: TimeZoneName = TimeZoneName(Tz::UTC);

    pub fn parse(name: &str) -> Result<TimeZoneName, String> {
        Tz::from_str(name.trim())
            .map(TimeZoneName)
            .map_err(|_| format!("{name:?} is not an IANA time zone (like Europe/London or America/New_York)"))
    }
    pub fn tz(self) -> Tz {
        self.0
    }
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The instant of a local wall-clock time in this zone (see the module documentation
    /// for times a DST change skips or repeats).
    pub fn instant(self, local: NaiveDateTime) -> DateTime<Utc> {
        let tz = self.0;
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => {
                // Skipped by a change: read it with the offset in force before the gap.
                // Gaps are at most a few hours, so 12 hours earlier is safely before it.
                use chrono::Offset;
                let before = tz
                    .from_local_datetime(&(local - Duration::hours(12)))
                    .earliest()
                    .map(|t| t.offset().fix())
                    .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
                let utc = local - Duration::seconds(before.local_minus_utc().into());
                Utc.from_utc_datetime(&utc)
            }
        }
    }
}

impl Default for TimeZoneName {
    fn default() -> Self {
        TimeZoneName::UTC
    }
}

impl TryFrom<String> for TimeZoneName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        TimeZoneName::parse(&s)
    }
}

impl From<TimeZoneName> for String {
    fn from(z: TimeZoneName) -> String {
        z.name().to_string()
    }
}

/// What a window covers: `{"customer_id": 7}`, `{"site_id": 70}` or `{"device": "ACME-DC01"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowScope {
    CustomerId(u64),
    SiteId(u64),
    /// A Datto device uid or hostname (case-insensitive).
    Device(String),
}

/// When a window is active: `{"one_off": {...}}` or `{"weekly": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowSchedule {
    /// From `starts_at` to `ends_at`, local times of `time_zone` (UTC when left out).
    OneOff {
        starts_at: NaiveDateTime,
        ends_at: NaiveDateTime,
        #[serde(default)]
        #[schema(value_type = String)]
        time_zone: TimeZoneName,
    },
    /// Every selected weekday from the local `start_time` for `duration_minutes`.
    Weekly {
        #[schema(value_type = Vec<String>)]
        days: Vec<Weekday>,
        start_time: NaiveTime,
        duration_minutes: u32,
        #[schema(value_type = String)]
        time_zone: TimeZoneName,
    },
}

/// One maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaintenanceWindow {
    pub id: u64,
    pub name: String,
    pub scope: WindowScope,
    pub schedule: WindowSchedule,
}

/// What a window's scope is checked against: where the alert's site mapping puts it and
/// which device it names. Plain data, so a held alert keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceSubject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_hostname: Option<String>,
}

/// The window an alert is inside, and when maintenance ends for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveMaintenance {
    pub window_id: u64,
    pub name: String,
    /// When no window covering the alert is active any more (windows that touch or
    /// overlap count as one stretch).
    pub ends_at: DateTime<Utc>,
}

impl MaintenanceWindow {
    /// Refuse a window that is malformed, naming the field (`schedule.weekly.duration_minutes`).
    pub fn validate(&self) -> Result<(), DomainError> {
        required_text("name", &self.name, NAME_MAX)?;
        if let WindowScope::Device(device) = &self.scope {
            required_text("scope.device", device, DEVICE_MAX)?;
        }
        match &self.schedule {
            WindowSchedule::OneOff {
                starts_at,
                ends_at,
                time_zone,
            } => {
                let (start, end) = (time_zone.instant(*starts_at), time_zone.instant(*ends_at));
                if end <= start {
                    return Err(DomainError::invalid(
                        "schedule.one_off.ends_at",
                        "must be after starts_at",
                    ));
                }
                if end - start > Duration::days(ONE_OFF_DAYS_MAX) {
                    return Err(DomainError::invalid(
                        "schedule.one_off.ends_at",
                        format!("a one-off window lasts at most {ONE_OFF_DAYS_MAX} days"),
                    ));
                }
            }
            WindowSchedule::Weekly {
                days, duration_minutes, ..
            } => {
                if days.is_empty() {
                    return Err(DomainError::invalid(
                        "schedule.weekly.days",
                        "must name at least one weekday",
                    ));
                }
                for (i, d) in days.iter().enumerate() {
                    if days[..i].contains(d) {
                        return Err(DomainError::invalid(
                            format!("schedule.weekly.days[{i}]"),
                            format!("{d} is named twice"),
                        ));
                    }
                }
                if !(1..=WEEK_MINUTES).contains(duration_minutes) {
                    return Err(DomainError::invalid(
                        "schedule.weekly.duration_minutes",
                        format!("must be between 1 and {WEEK_MINUTES}"),
                    ));
                }
                let gap = shortest_gap_minutes(days);
                if *duration_minutes > gap {
                    return Err(DomainError::invalid(
                        "schedule.weekly.duration_minutes",
                        format!("must be at most {gap}: longer, a day's window would overlap the next one's"),
                    ));
                }
                if days.len() as u32 * duration_minutes >= WEEK_MINUTES {
                    return Err(DomainError::invalid(
                        "schedule.weekly.duration_minutes",
                        "the window would cover the whole week: leave some time outside maintenance",
                    ));
                }
            }
        }
        Ok(())
    }

    /// True when the window's scope covers the subject.
    pub fn applies_to(&self, subject: &MaintenanceSubject) -> bool {
        match &self.scope {
            WindowScope::CustomerId(customer_id) => subject.customer_id == Some(*customer_id),
            WindowScope::SiteId(site_id) => subject.site_id == Some(*site_id),
            WindowScope::Device(device) => {
                let device = device.trim();
                [&subject.device_uid, &subject.device_hostname]
                    .into_iter()
                    .flatten()
                    .any(|d| d.trim().eq_ignore_ascii_case(device))
            }
        }
    }

    /// The occurrence active at `t` (start, end), if any; of two, the one ending later.
    pub fn occurrence_at(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match &self.schedule {
            WindowSchedule::OneOff {
                starts_at,
                ends_at,
                time_zone,
            } => {
                let (start, end) = (time_zone.instant(*starts_at), time_zone.instant(*ends_at));
                (start <= t && t < end).then_some((start, end))
            }
            WindowSchedule::Weekly {
                days,
                start_time,
                duration_minutes,
                time_zone,
            } => {
                let today = t.with_timezone(&time_zone.tz()).date_naive();
                // A window lasts at most a week, so an occurrence covering `t` started at
                // most 7 local days before it.
                (0..=7)
                    .filter_map(|back| today.checked_sub_signed(Duration::days(back)))
                    .filter(|d| days.contains(&d.weekday()))
                    .map(|d| occurrence(*time_zone, d, *start_time, *duration_minutes))
                    .filter(|(start, end)| *start <= t && t < *end)
                    .max_by_key(|(_, end)| *end)
            }
        }
    }

    pub fn active_at(&self, t: DateTime<Utc>) -> bool {
        self.occurrence_at(t).is_some()
    }

    /// When the stretch of this window's occurrences covering `t` ends; `None` when it is
    /// not active at `t`.
    pub fn current_end(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        stretch_end(std::slice::from_ref(self), t)
    }
}

fn occurrence(zone: TimeZoneName, day: NaiveDate, start: NaiveTime, minutes: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let begin = zone.instant(day.and_time(start));
    (begin, begin + Duration::minutes(minutes.into()))
}

/// The shortest distance between two selected weekdays (cyclic), in minutes; a week when
/// one day is selected.
fn shortest_gap_minutes(days: &[Weekday]) -> u32 {
    let mut nums: Vec<u32> = days.iter().map(|d| d.num_days_from_monday()).collect();
    nums.sort_unstable();
    nums.dedup();
    let gaps = nums.windows(2).map(|w| w[1] - w[0]);
    let wrap = nums.first().map(|f| f + 7 - nums[nums.len() - 1]);
    gaps.chain(wrap).min().unwrap_or(7) * 24 * 60
}

/// The end of the stretch during which some of `windows` is active, starting at `t`.
fn stretch_end(windows: &[MaintenanceWindow], t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let covering = |at: DateTime<Utc>| windows.iter().filter_map(|w| w.occurrence_at(at)).map(|(_, e)| e).max();
    let mut end = covering(t)?;
    // Occurrences that touch or overlap chain into one stretch. Validation keeps every
    // window from covering all time, so the chain is short; the bound is a safety net.
    for _ in 0..64 {
        match covering(end) {
            Some(next) if next > end => end = next,
            _ => break,
        }
    }
    Some(end)
}

/// The maintenance an alert with this subject is inside at `now`, if any: the covering
/// window that ends latest names it, and `ends_at` is when all covering windows are over.
pub fn active_window(
    windows: &[MaintenanceWindow],
    subject: &MaintenanceSubject,
    now: DateTime<Utc>,
) -> Option<ActiveMaintenance> {
    let applicable: Vec<MaintenanceWindow> = windows.iter().filter(|w| w.applies_to(subject)).cloned().collect();
    let (window, _) = applicable
        .iter()
        .filter_map(|w| w.occurrence_at(now).map(|(_, end)| (w, end)))
        .max_by_key(|(_, end)| *end)?;
    Some(ActiveMaintenance {
        window_id: window.id,
        name: window.name.clone(),
        ends_at: stretch_end(&applicable, now)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window(schedule: serde_json::Value) -> MaintenanceWindow {
        let w: MaintenanceWindow = serde_json::from_value(json!({"id": 1, "name": "Patch night",
            "scope": {"device": "ACME-DC01"}, "schedule": schedule}))
        .unwrap();
        assert_eq!(w.validate(), Ok(()), "{w:?}");
        w
    }

    fn weekly(days: &[&str], start: &str, minutes: u32, zone: &str) -> MaintenanceWindow {
        window(
            json!({"weekly": {"days": days, "start_time": start, "duration_minutes": minutes,
            "time_zone": zone}}),
        )
    }

    #[test]
    fn a_one_off_window_in_utc_is_half_open() {
        let w = window(json!({"one_off": {"starts_at": "2025-06-01T22:00:00", "ends_at": "2025-06-02T02:00:00"}}));
        assert!(!w.active_at(utc("2025-06-01T21:59:59Z")));
        assert!(w.active_at(utc("2025-06-01T22:00:00Z")));
        assert_eq!(
            w.current_end(utc("2025-06-02T01:00:00Z")),
            Some(utc("2025-06-02T02:00:00Z"))
        );
        assert!(!w.active_at(utc("2025-06-02T02:00:00Z")));
    }

    #[test]
    fn a_one_off_window_with_a_zone_spans_the_autumn_change_in_london() {
        // Clocks go back at 02:00 BST on 26 October 2025: 22:00 BST to 03:00 GMT is 6 hours.
        let w = window(json!({"one_off": {"starts_at": "2025-10-25T22:00:00",
            "ends_at": "2025-10-26T03:00:00", "time_zone": "Europe/London"}}));
        let (start, end) = w.occurrence_at(utc("2025-10-26T00:00:00Z")).unwrap();
        assert_eq!((start, end), (utc("2025-10-25T21:00:00Z"), utc("2025-10-26T03:00:00Z")));
        assert_eq!(end - start, Duration::hours(6));
    }

    #[test]
    fn a_weekly_window_in_london_follows_the_clock_across_the_spring_change() {
        // Saturday 23:00 for 4 hours. On 29 March 2025 that is 23:00 GMT and runs over the
        // change (01:00 GMT becomes 02:00 BST) for 4 elapsed hours, to 03:00 UTC = 04:00 BST.
        let w = weekly(&["Sat"], "23:00:00", 240, "Europe/London");
        assert_eq!(
            w.occurrence_at(utc("2025-03-30T01:30:00Z")),
            Some((utc("2025-03-29T23:00:00Z"), utc("2025-03-30T03:00:00Z")))
        );
        assert!(!w.active_at(utc("2025-03-29T22:30:00Z")));
        // A week later it is 23:00 BST = 22:00 UTC.
        assert!(w.active_at(utc("2025-04-05T22:30:00Z")));
        assert_eq!(
            w.current_end(utc("2025-04-05T22:30:00Z")),
            Some(utc("2025-04-06T02:00:00Z"))
        );
        // The week before, 23:00 GMT again.
        assert!(!w.active_at(utc("2025-03-22T22:30:00Z")));
        assert!(w.active_at(utc("2025-03-22T23:30:00Z")));
    }

    #[test]
    fn a_london_window_starting_in_the_skipped_hour_starts_when_the_clock_resumes() {
        // 01:30 on 30 March 2025 does not exist in London: read with GMT, it is 01:30 UTC
        // (02:30 BST).
        let w = weekly(&["Sun"], "01:30:00", 60, "Europe/London");
        assert_eq!(
            w.occurrence_at(utc("2025-03-30T02:00:00Z")),
            Some((utc("2025-03-30T01:30:00Z"), utc("2025-03-30T02:30:00Z")))
        );
        assert!(!w.active_at(utc("2025-03-30T00:45:00Z")));
    }

    #[test]
    fn a_new_york_window_in_the_repeated_hour_is_the_first_one() {
        // Clocks go back at 02:00 EDT on 2 November 2025; 01:30 happens twice. The window
        // is the first 01:30 (EDT, 05:30 UTC), for one elapsed hour.
        let w = weekly(&["Sun"], "01:30:00", 60, "America/New_York");
        assert_eq!(
            w.occurrence_at(utc("2025-11-02T05:45:00Z")),
            Some((utc("2025-11-02T05:30:00Z"), utc("2025-11-02T06:30:00Z")))
        );
        assert!(
            !w.active_at(utc("2025-11-02T06:45:00Z")),
            "the second 01:45 (EST) is outside"
        );
        // The weeks around it sit at 05:30 UTC (EDT) and 06:30 UTC (EST).
        assert!(w.active_at(utc("2025-10-26T05:45:00Z")));
        assert!(!w.active_at(utc("2025-11-09T05:45:00Z")));
        assert!(w.active_at(utc("2025-11-09T06:45:00Z")));
    }

    #[test]
    fn a_new_york_window_in_the_skipped_hour_and_one_spanning_the_change() {
        // 02:30 on 9 March 2025 does not exist in New York: read with EST it is 07:30 UTC
        // (03:30 EDT).
        let w = weekly(&["Sun"], "02:30:00", 30, "America/New_York");
        assert_eq!(
            w.occurrence_at(utc("2025-03-09T07:40:00Z")),
            Some((utc("2025-03-09T07:30:00Z"), utc("2025-03-09T08:00:00Z")))
        );
        // Saturday 22:00 EST for 8 hours: 03:00 UTC to 11:00 UTC = 07:00 EDT.
        let w = weekly(&["Sat"], "22:00:00", 480, "America/New_York");
        assert_eq!(
            w.current_end(utc("2025-03-09T06:00:00Z")),
            Some(utc("2025-03-09T11:00:00Z"))
        );
        assert!(w.active_at(utc("2025-03-09T03:00:00Z")));
        assert!(!w.active_at(utc("2025-03-09T02:59:00Z")));
    }

    #[test]
    fn consecutive_weekly_occurrences_chain_into_one_end() {
        // Monday to Friday from 20:00 for 24 hours: one stretch Monday 20:00 to Saturday 20:00.
        let w = weekly(&["Mon", "Tue", "Wed", "Thu", "Fri"], "20:00:00", 1440, "UTC");
        assert_eq!(
            w.current_end(utc("2025-06-03T12:00:00Z")),
            Some(utc("2025-06-07T20:00:00Z"))
        );
        assert!(!w.active_at(utc("2025-06-02T19:59:00Z")));
        assert_eq!(w.current_end(utc("2025-06-08T12:00:00Z")), None);
    }

    #[test]
    fn windows_apply_by_scope_and_the_active_one_is_named() {
        let subject = MaintenanceSubject {
            customer_id: Some(7),
            site_id: Some(70),
            device_uid: Some("b2e4a7c1-6f3d-4e58-a9b0-7d2c1e8f4a63".into()),
            device_hostname: Some("ACME-DC01".into()),
        };
        let mk = |id: u64, name: &str, scope: serde_json::Value, from: &str, to: &str| -> MaintenanceWindow {
            serde_json::from_value(json!({"id": id, "name": name, "scope": scope,
                "schedule": {"one_off": {"starts_at": from, "ends_at": to}}}))
            .unwrap()
        };
        let windows = [
            mk(
                1,
                "Other customer",
                json!({"customer_id": 8}),
                "2025-06-01T00:00:00",
                "2025-06-09T00:00:00",
            ),
            mk(
                2,
                "Site move",
                json!({"site_id": 70}),
                "2025-06-01T00:00:00",
                "2025-06-01T04:00:00",
            ),
            mk(
                3,
                "DC reboot",
                json!({"device": "acme-dc01"}),
                "2025-06-01T03:00:00",
                "2025-06-01T06:00:00",
            ),
            mk(
                4,
                "By uid",
                json!({"device": "B2E4A7C1-6F3D-4E58-A9B0-7D2C1E8F4A63"}),
                "2025-06-02T00:00:00",
                "2025-06-02T01:00:00",
            ),
        ];
        let at = active_window(&windows, &subject, utc("2025-06-01T02:00:00Z")).unwrap();
        // Site move covers 02:00; DC reboot overlaps it, so maintenance lasts to 06:00.
        assert_eq!((at.window_id, at.name.as_str()), (2, "Site move"));
        assert_eq!(at.ends_at, utc("2025-06-01T06:00:00Z"));
        let at = active_window(&windows, &subject, utc("2025-06-01T03:30:00Z")).unwrap();
        assert_eq!(at.window_id, 3, "the covering window that ends latest is named");
        assert_eq!(
            active_window(&windows, &subject, utc("2025-06-02T00:30:00Z"))
                .unwrap()
                .window_id,
            4
        );
        assert_eq!(active_window(&windows, &subject, utc("2025-06-05T00:00:00Z")), None);
        assert_eq!(
            active_window(&windows[..1], &subject, utc("2025-06-01T02:00:00Z")),
            None
        );
    }

    #[test]
    fn bad_windows_are_refused_naming_the_field() {
        let cases = [
            (
                json!({"one_off": {"starts_at": "2025-06-01T04:00:00", "ends_at": "2025-06-01T04:00:00"}}),
                "schedule.one_off.ends_at",
            ),
            (
                json!({"one_off": {"starts_at": "2025-01-01T00:00:00", "ends_at": "2026-06-01T00:00:00"}}),
                "schedule.one_off.ends_at",
            ),
            (
                json!({"weekly": {"days": [], "start_time": "22:00:00", "duration_minutes": 60, "time_zone": "UTC"}}),
                "schedule.weekly.days",
            ),
            (
                json!({"weekly": {"days": ["Mon", "Monday"], "start_time": "22:00:00", "duration_minutes": 60, "time_zone": "UTC"}}),
                "schedule.weekly.days[1]",
            ),
            (
                json!({"weekly": {"days": ["Mon"], "start_time": "22:00:00", "duration_minutes": 0, "time_zone": "UTC"}}),
                "schedule.weekly.duration_minutes",
            ),
            (
                json!({"weekly": {"days": ["Mon", "Tue"], "start_time": "22:00:00", "duration_minutes": 1441, "time_zone": "UTC"}}),
                "schedule.weekly.duration_minutes",
            ),
            (
                json!({"weekly": {"days": ["Mon"], "start_time": "00:00:00", "duration_minutes": 10080, "time_zone": "UTC"}}),
                "schedule.weekly.duration_minutes",
            ),
            (
                json!({"weekly": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "start_time": "00:00:00",
                "duration_minutes": 1440, "time_zone": "UTC"}}),
                "schedule.weekly.duration_minutes",
            ),
        ];
        for (schedule, field) in cases {
            let w: MaintenanceWindow = serde_json::from_value(json!({"id": 1, "name": "w",
                "scope": {"customer_id": 1}, "schedule": schedule}))
            .unwrap();
            match w.validate() {
                Err(DomainError::Validation { field: f, .. }) => assert_eq!(f, field, "{w:?}"),
                other => panic!("{field}: expected a validation error, got {other:?}"),
            }
        }
        let no_name: MaintenanceWindow = serde_json::from_value(json!({"id": 1, "name": "",
            "scope": {"device": " "}, "schedule": {"one_off": {
            "starts_at": "2025-06-01T00:00:00", "ends_at": "2025-06-01T01:00:00"}}}))
        .unwrap();
        assert!(matches!(no_name.validate(), Err(DomainError::Validation { field, .. }) if field == "name"));
        // An unknown zone fails where it is parsed, naming its place.
        let bad = json!({"id": 1, "name": "w", "scope": {"customer_id": 1},
            "schedule": {"weekly": {"days": ["Mon"], "start_time": "22:00:00", "duration_minutes": 60,
            "time_zone": "Europe/Londn"}}});
        let err = serde_path_to_error::deserialize::<_, MaintenanceWindow>(bad).unwrap_err();
        assert_eq!(err.path().to_string(), "schedule.weekly.time_zone");
        assert!(err.to_string().contains("not an IANA time zone"), "{err}");
    }

    #[test]
    fn a_zone_serialises_as_its_name() {
        let z = TimeZoneName::parse("America/New_York").unwrap();
        assert_eq!(serde_json::to_value(z).unwrap(), json!("America/New_York"));
        assert_eq!(TimeZoneName::default().name(), "UTC");
    }
}
