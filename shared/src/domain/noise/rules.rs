//! Routing rules: an ordered list, each matching an alert by customer/site, Datto priority,
//! monitor type, device name and message text, and routing its ticket or suppressing it.
//!
//! Within a rule every criterion given must match (and); a list criterion matches when any
//! of its entries does (or); an empty criterion matches everything. The first matching rule
//! wins. Device names are globs (`*`, `?`, case-insensitive, the whole name); messages match
//! by case-insensitive `contains` or by `regex` (case-insensitive, unanchored, bounded size).

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::monitor::monitor_types;
use super::DecisionLine;
use crate::domain::alerts::{alert_summary, ticket_draft, AlertFacts, AlertUid};
use crate::domain::datto::{is_placeholder, PriorityMap};
use crate::domain::desk::Priority;
use crate::domain::tickets::validate_custom_fields;
use crate::domain::{required_text, DomainError};

/// The most rules a desk keeps.
pub const RULES_MAX: usize = 200;
/// The most entries one list criterion holds.
pub const LIST_MAX: usize = 50;
/// The longest pattern, text or list entry (characters).
pub const PATTERN_MAX: usize = 200;
/// The longest rule name (characters).
pub const NAME_MAX: usize = 100;
/// The compiled size a pattern may take (bytes); the `regex` crate matches in linear time,
/// this bounds the memory and the compile time.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Datto's priority words, as a rule may name them.
pub const DATTO_PRIORITIES: [&str; 6] = ["Critical", "High", "Moderate", "Low", "Information", "Unknown"];

fn build(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "is too complex".to_string(),
            other => format!(
                "is not a valid pattern: {}",
                other.to_string().lines().last().unwrap_or("")
            ),
        })
}

fn bounded(s: &str) -> Result<&str, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > PATTERN_MAX {
        return Err(format!("must be at most {PATTERN_MAX} characters"));
    }
    Ok(s)
}

/// A device-name glob: `*` any run of characters, `?` one character, everything else
/// literal; case-insensitive; it must match the whole hostname (`ACME-*`, `*-DC??`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DevicePattern {
    glob: String,
    regex: Regex,
}

impl DevicePattern {
    pub fn parse(glob: &str) -> Result<DevicePattern, String> {
        let glob = bounded(glob)?;
        let mut re = String::from("^");
        for c in glob.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        Ok(DevicePattern {
            glob: glob.to_string(),
            regex: build(&re)?,
        })
    }
    pub fn matches(&self, hostname: &str) -> bool {
        self.regex.is_match(hostname.trim())
    }
    pub fn as_str(&self) -> &str {
        &self.glob
    }
}

impl PartialEq for DevicePattern {
    fn eq(&self, other: &Self) -> bool {
        self.glob == other.glob
    }
}

impl TryFrom<String> for DevicePattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        DevicePattern::parse(&s)
    }
}

impl From<DevicePattern> for String {
    fn from(p: DevicePattern) -> String {
        p.glob
    }
}

/// A message regex (case-insensitive, unanchored), refused when invalid or too complex.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TextPattern {
    source: String,
    regex: Regex,
}

impl TextPattern {
    pub fn parse(pattern: &str) -> Result<TextPattern, String> {
        let source = bounded(pattern)?;
        Ok(TextPattern {
            source: source.to_string(),
            regex: build(source)?,
        })
    }
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl PartialEq for TextPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl TryFrom<String> for TextPattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        TextPattern::parse(&s)
    }
}

impl From<TextPattern> for String {
    fn from(p: TextPattern) -> String {
        p.source
    }
}

impl utoipa::PartialSchema for TextPattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <String as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for TextPattern {}

/// How a rule matches the alert's text: `{"contains": "disk"}` or `{"regex": "^backup .* failed"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextMatch {
    Contains(String),
    Regex(TextPattern),
}

impl TextMatch {
    fn matches(&self, text: &str) -> bool {
        match self {
            TextMatch::Contains(needle) => text.to_lowercase().contains(&needle.trim().to_lowercase()),
            TextMatch::Regex(p) => p.regex.is_match(text),
        }
    }
}

/// What a rule matches. Every criterion given must match; an empty one matches all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct RuleMatch {
    /// Desk customers (after the Datto site mapping).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub customer_ids: Vec<u64>,
    /// Desk sites (after the Datto site mapping).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub site_ids: Vec<u64>,
    /// Datto site uids, as the alert names them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub datto_site_uids: Vec<String>,
    /// Datto priority words; an alert without a priority counts as `Unknown`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<String>,
    /// Monitor types: a context class (`srvc_status_ctx` or `srvc_status`), its readable
    /// kind (`Service status`), or the `alert_type` / `alert_category` a payload sends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub monitor_types: Vec<String>,
    /// Device-name globs; an alert without a hostname matches none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub device_names: Vec<DevicePattern>,
    /// The alert's message (for a polled alert, the summary built from its context).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<TextMatch>,
}

/// What a matching rule sets on the ticket; fields left out keep their defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Route {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_type_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Merged over the alert's `additional_values`; the rule's value wins.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

impl Route {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.ticket_type_id {
            parts.push(format!("ticket type {t}"));
        }
        if let Some(t) = self.team_id {
            parts.push(format!("team {t}"));
        }
        if let Some(p) = self.priority {
            parts.push(format!("priority {}", priority_word(p)));
        }
        if !self.custom_fields.is_empty() {
            let names: Vec<&str> = self.custom_fields.keys().map(String::as_str).collect();
            parts.push(format!("custom fields {}", names.join(", ")));
        }
        parts.join(", ")
    }
}

fn priority_word(p: Priority) -> &'static str {
    match p {
        Priority::Critical => "critical",
        Priority::High => "high",
        Priority::Medium => "medium",
        Priority::Low => "low",
    }
}

/// What a rule does: `{"route": {"team_id": 4}}` or `"suppress"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Route(Route),
    /// Open no ticket; the alert is recorded and its timeline says which rule.
    Suppress,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoutingRule {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub when: RuleMatch,
    pub then: RuleAction,
}

fn list<T>(field: &str, items: &[T]) -> Result<(), DomainError> {
    if items.len() > LIST_MAX {
        return Err(DomainError::invalid(
            field,
            format!("must hold at most {LIST_MAX} entries"),
        ));
    }
    Ok(())
}

fn texts(field: &str, items: &[String]) -> Result<(), DomainError> {
    list(field, items)?;
    for (i, s) in items.iter().enumerate() {
        bounded(s).map_err(|m| DomainError::invalid(format!("{field}[{i}]"), m))?;
    }
    Ok(())
}

impl RoutingRule {
    /// Refuse a rule that is malformed, naming the field (`when.priorities[1]`). Patterns
    /// are checked when they are parsed; this checks what serde cannot.
    pub fn validate(&self) -> Result<(), DomainError> {
        required_text("name", &self.name, NAME_MAX)?;
        let w = &self.when;
        list("when.customer_ids", &w.customer_ids)?;
        list("when.site_ids", &w.site_ids)?;
        texts("when.datto_site_uids", &w.datto_site_uids)?;
        texts("when.priorities", &w.priorities)?;
        for (i, p) in w.priorities.iter().enumerate() {
            if !DATTO_PRIORITIES.iter().any(|d| d.eq_ignore_ascii_case(p.trim())) {
                return Err(DomainError::invalid(
                    format!("when.priorities[{i}]"),
                    format!("must be one of {}, got {p:?}", DATTO_PRIORITIES.join(", ")),
                ));
            }
        }
        texts("when.monitor_types", &w.monitor_types)?;
        list("when.device_names", &w.device_names)?;
        if let Some(TextMatch::Contains(s)) = &w.message {
            bounded(s).map_err(|m| DomainError::invalid("when.message.contains", m))?;
        }
        if let RuleAction::Route(route) = &self.then {
            if route == &Route::default() {
                return Err(DomainError::invalid(
                    "then.route",
                    "must set ticket_type_id, team_id, priority or custom_fields (or make the rule \"suppress\")",
                ));
            }
            validate_custom_fields(route.custom_fields.clone()).map_err(|e| match e {
                DomainError::Validation { field, message } => {
                    DomainError::invalid(format!("then.route.{field}"), message)
                }
                other => other,
            })?;
        }
        Ok(())
    }

    fn matches(&self, input: &RuleInput<'_>) -> bool {
        let w = &self.when;
        let facts = input.facts;
        let any_id = |ids: &[u64], id: Option<u64>| ids.is_empty() || id.is_some_and(|id| ids.contains(&id));
        let any_text = |wanted: &[String], got: &[&str]| {
            wanted.is_empty()
                || wanted
                    .iter()
                    .any(|w| got.iter().any(|g| g.eq_ignore_ascii_case(w.trim())))
        };
        let priority = known(facts.priority.as_deref()).unwrap_or("Unknown");
        let types = monitor_types(facts);
        let types: Vec<&str> = types.iter().map(String::as_str).collect();
        let site_uid: Vec<&str> = known(facts.site_uid.as_deref()).into_iter().collect();
        any_id(&w.customer_ids, input.customer_id)
            && any_id(&w.site_ids, input.site_id)
            && any_text(&w.datto_site_uids, &site_uid)
            && any_text(&w.priorities, &[priority])
            && any_text(&w.monitor_types, &types)
            && (w.device_names.is_empty()
                || known(facts.device_hostname.as_deref()).is_some_and(|h| w.device_names.iter().any(|p| p.matches(h))))
            && w.message.as_ref().is_none_or(|m| m.matches(&alert_text(facts)))
    }
}

/// Refuse a rule list that is too long, repeats an id or holds a bad rule (`rules[2].name`).
pub fn validate_rules(rules: &[RoutingRule]) -> Result<(), DomainError> {
    if rules.len() > RULES_MAX {
        return Err(DomainError::invalid(
            "rules",
            format!("must hold at most {RULES_MAX} rules"),
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i].iter().any(|r| r.id == rule.id) {
            return Err(DomainError::invalid(
                format!("rules[{i}].id"),
                format!("{} is used by an earlier rule", rule.id),
            ));
        }
        rule.validate().map_err(|e| match e {
            DomainError::Validation { field, message } => DomainError::invalid(format!("rules[{i}].{field}"), message),
            other => other,
        })?;
    }
    Ok(())
}

fn known(v: Option<&str>) -> Option<&str> {
    let v = v?.trim();
    (!v.is_empty() && !is_placeholder(v)).then_some(v)
}

/// The text a message criterion reads: the message, else the summary from the context.
fn alert_text(facts: &AlertFacts) -> String {
    match known(facts.message.as_deref()) {
        Some(m) => m.to_string(),
        None => alert_summary(facts),
    }
}

/// What a rule is matched against: the alert's facts and where the site mapping puts it.
#[derive(Debug, Clone, Copy)]
pub struct RuleInput<'a> {
    pub facts: &'a AlertFacts,
    pub customer_id: Option<u64>,
    pub site_id: Option<u64>,
}

/// A rule as a decision names it: its place in the list (from 1), id and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleRef {
    pub position: usize,
    pub id: u64,
    pub name: String,
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rule {} '{}'", self.position, self.name)
    }
}

/// Which rule matched and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RuleDecision {
    NoMatch,
    Route { rule: RuleRef, route: Route },
    Suppress { rule: RuleRef },
}

impl RuleDecision {
    /// The route to apply, if a rule routes.
    pub fn route(&self) -> Option<&Route> {
        match self {
            RuleDecision::Route { route, .. } => Some(route),
            _ => None,
        }
    }

    pub fn line(&self) -> DecisionLine {
        match self {
            RuleDecision::NoMatch => DecisionLine::new(
                "no rule matched",
                "No routing rule matched: the default ticket type and the mapped priority apply.",
            ),
            RuleDecision::Route { rule, route } => DecisionLine::new(
                format!("routed by {rule}"),
                format!("Routed by {rule}: {}.", route.describe()),
            ),
            RuleDecision::Suppress { rule } => DecisionLine::new(
                format!("suppressed by {rule}"),
                format!("Suppressed by {rule}: recorded, no ticket."),
            ),
        }
    }
}

/// The first rule that matches decides.
pub fn evaluate(rules: &[RoutingRule], input: &RuleInput<'_>) -> RuleDecision {
    let Some((i, rule)) = rules.iter().enumerate().find(|(_, r)| r.matches(input)) else {
        return RuleDecision::NoMatch;
    };
    let rule_ref = RuleRef {
        position: i + 1,
        id: rule.id,
        name: rule.name.clone(),
    };
    match &rule.then {
        RuleAction::Route(route) => RuleDecision::Route {
            rule: rule_ref,
            route: route.clone(),
        },
        RuleAction::Suppress => RuleDecision::Suppress { rule: rule_ref },
    }
}

/// What a ticket made from an alert holds once routed (customer and site come from the
/// site mapping, as before).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoutedTicket {
    pub summary: String,
    pub details: String,
    pub ticket_type_id: Option<u64>,
    pub team_id: Option<u64>,
    pub priority: Priority,
    pub asset: Option<String>,
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// The defaults a route falls back to.
#[derive(Debug, Clone, Copy)]
pub struct TicketDefaults<'a> {
    pub default_ticket_type_id: Option<u64>,
    pub priorities: &'a PriorityMap,
}

/// The ticket an alert makes under a rule decision (`None` when suppressed).
pub fn routed_ticket(
    uid: &AlertUid,
    facts: &AlertFacts,
    decision: &RuleDecision,
    defaults: TicketDefaults<'_>,
) -> Result<Option<RoutedTicket>, DomainError> {
    if matches!(decision, RuleDecision::Suppress { .. }) {
        return Ok(None);
    }
    let draft = ticket_draft(uid, facts, defaults.priorities)?;
    let route = decision.route().cloned().unwrap_or_default();
    let mut custom_fields = draft.custom_fields;
    custom_fields.extend(route.custom_fields);
    Ok(Some(RoutedTicket {
        summary: draft.summary,
        details: draft.details,
        ticket_type_id: route.ticket_type_id.or(defaults.default_ticket_type_id),
        team_id: route.team_id,
        priority: route.priority.unwrap_or(draft.priority),
        asset: draft.asset,
        custom_fields,
    }))
}

/// What the preview answers for a sample alert: the rule that matches and the ticket it
/// would make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RulePreview {
    pub decision: RuleDecision,
    pub ticket: Option<RoutedTicket>,
    pub line: DecisionLine,
}

pub fn preview(
    rules: &[RoutingRule],
    input: &RuleInput<'_>,
    uid: &AlertUid,
    defaults: TicketDefaults<'_>,
) -> Result<RulePreview, DomainError> {
    let decision = evaluate(rules, input);
    let ticket = routed_ticket(uid, input.facts, &decision, defaults)?;
    Ok(RulePreview {
        line: decision.line(),
        decision,
        ticket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn rule(id: u64, name: &str, when: Value, then: Value) -> RoutingRule {
        serde_json::from_value(json!({"id": id, "name": name, "when": when, "then": then})).unwrap()
    }

    fn facts(v: Value) -> AlertFacts {
        serde_json::from_value(v).unwrap()
    }

    fn input(f: &AlertFacts) -> RuleInput<'_> {
        RuleInput {
            facts: f,
            customer_id: Some(7),
            site_id: Some(70),
        }
    }

    fn dc01() -> AlertFacts {
        facts(
            json!({"message": "CPU usage on ACME-DC01 has been above 90% for 15 minutes",
            "priority": "High", "device_hostname": "ACME-DC01", "site_uid": "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
            "additional_values": {"category": "Monitoring"}}),
        )
    }

    fn matched(rules: &[RoutingRule], f: &AlertFacts) -> Option<usize> {
        match evaluate(rules, &input(f)) {
            RuleDecision::NoMatch => None,
            RuleDecision::Route { rule, .. } | RuleDecision::Suppress { rule } => Some(rule.position),
        }
    }

    #[test]
    fn each_criterion_matches_and_misses() {
        let f = dc01();
        let team = json!({"route": {"team_id": 4}});
        let table: [(Value, bool, &str); 16] = [
            (json!({}), true, "an empty rule matches everything"),
            (json!({"customer_ids": [3, 7]}), true, "customer in the list"),
            (json!({"customer_ids": [3]}), false, "customer not in the list"),
            (json!({"site_ids": [70]}), true, "site in the list"),
            (
                json!({"datto_site_uids": ["0F9E8D7C-6B5A-4C3D-8E2F-1A0B9C8D7E6F"]}),
                true,
                "datto site, any case",
            ),
            (json!({"datto_site_uids": ["other"]}), false, "another datto site"),
            (
                json!({"priorities": ["critical", "high"]}),
                true,
                "priority word, any case",
            ),
            (json!({"priorities": ["Low"]}), false, "another priority"),
            (json!({"device_names": ["acme-*"]}), true, "glob, any case"),
            (json!({"device_names": ["*-DC0?"]}), true, "? is one character"),
            (
                json!({"device_names": ["ACME"]}),
                false,
                "a glob matches the whole name",
            ),
            (json!({"message": {"contains": "above 90%"}}), true, "contains"),
            (json!({"message": {"contains": "disk"}}), false, "does not contain"),
            (
                json!({"message": {"regex": "^cpu usage .* above \\d+%"}}),
                true,
                "regex, case-insensitive",
            ),
            (json!({"monitor_types": ["srvc_status"]}), false, "no context, no type"),
            (
                json!({"customer_ids": [7], "priorities": ["High"], "device_names": ["BIRCH-*"]}),
                false,
                "all criteria must match",
            ),
        ];
        for (when, expected, why) in table {
            let rules = [rule(1, "r", when, team.clone())];
            assert_eq!(matched(&rules, &f).is_some(), expected, "{why}");
        }
    }

    #[test]
    fn monitor_types_match_the_context_class_and_an_alert_without_priority_is_unknown() {
        let f =
            facts(json!({"context": {"@class": "srvc_status_ctx", "serviceName": "Spooler"}, "device_hostname": "X"}));
        let route = json!({"route": {"priority": "low"}});
        for t in ["srvc_status_ctx", "srvc_status", "Service status"] {
            assert!(
                matched(&[rule(1, "r", json!({"monitor_types": [t]}), route.clone())], &f).is_some(),
                "{t}"
            );
        }
        assert!(matched(&[rule(1, "r", json!({"priorities": ["Unknown"]}), route.clone())], &f).is_some());
        // A polled alert has no message: the text criterion reads the summary from its context.
        assert!(matched(&[rule(1, "r", json!({"message": {"contains": "Spooler"}}), route)], &f).is_some());
    }

    #[test]
    fn the_first_matching_rule_wins_and_says_so() {
        let rules = [
            rule(
                10,
                "Lab is noise",
                json!({"device_names": ["LAB-*"]}),
                json!("suppress"),
            ),
            rule(
                11,
                "Servers to Infra",
                json!({"device_names": ["*-DC*"]}),
                json!({"route": {"team_id": 4, "priority": "critical"}}),
            ),
            rule(12, "Everything else", json!({}), json!({"route": {"team_id": 1}})),
        ];
        let d = evaluate(&rules, &input(&dc01()));
        let RuleDecision::Route { rule, route } = &d else {
            panic!("{d:?}")
        };
        assert_eq!((rule.position, rule.id), (2, 11));
        assert_eq!(route.team_id, Some(4));
        assert_eq!(d.line().outcome, "routed by rule 2 'Servers to Infra'");
        assert_eq!(
            d.line().sentence,
            "Routed by rule 2 'Servers to Infra': team 4, priority critical."
        );

        let lab = facts(json!({"device_hostname": "lab-07", "message": "x"}));
        let d = evaluate(&rules, &input(&lab));
        assert_eq!(d.line().outcome, "suppressed by rule 1 'Lab is noise'");
        let other = facts(json!({"device_hostname": "BIRCH-FS01"}));
        assert_eq!(matched(&rules, &other), Some(3));
        assert_eq!(evaluate(&rules[..2], &input(&other)), RuleDecision::NoMatch);
    }

    #[test]
    fn the_preview_says_which_rule_and_what_ticket() {
        let rules = [rule(
            11,
            "Servers to Infra",
            json!({"device_names": ["*-DC*"]}),
            json!({"route": {"team_id": 4, "ticket_type_id": 9,
                "custom_fields": {"category": "Servers", "queue": 2}}}),
        )];
        let uid = AlertUid::parse("alert_uid", "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94").unwrap();
        let priorities = PriorityMap::default();
        let defaults = TicketDefaults {
            default_ticket_type_id: Some(1),
            priorities: &priorities,
        };
        let p = preview(&rules, &input(&dc01()), &uid, defaults).unwrap();
        let t = p.ticket.unwrap();
        assert_eq!(t.summary, "CPU usage on ACME-DC01 has been above 90% for 15 minutes");
        assert_eq!(
            (t.ticket_type_id, t.team_id, t.priority),
            (Some(9), Some(4), Priority::High)
        );
        assert_eq!(t.custom_fields["category"], "Servers", "the rule's value wins");
        assert_eq!(t.custom_fields["queue"], 2);
        assert_eq!(t.asset.as_deref(), Some("ACME-DC01"));
        assert_eq!(p.line.outcome, "routed by rule 1 'Servers to Infra'");

        // Nothing matches: the defaults.
        let p = preview(&[], &input(&dc01()), &uid, defaults).unwrap();
        let t = p.ticket.unwrap();
        assert_eq!(
            (t.ticket_type_id, t.team_id, t.priority),
            (Some(1), None, Priority::High)
        );
        assert_eq!(p.decision, RuleDecision::NoMatch);
        // Suppressed: no ticket.
        let rules = [rule(1, "Mute", json!({}), json!("suppress"))];
        let p = preview(&rules, &input(&dc01()), &uid, defaults).unwrap();
        assert_eq!(p.ticket, None);
        assert_eq!(p.line.outcome, "suppressed by rule 1 'Mute'");
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        let ok_then = json!({"route": {"team_id": 1}});
        let table: [(Value, Value, &str); 8] = [
            (
                json!({"priorities": ["High", "Urgent"]}),
                ok_then.clone(),
                "when.priorities[1]",
            ),
            (
                json!({"datto_site_uids": ["  "]}),
                ok_then.clone(),
                "when.datto_site_uids[0]",
            ),
            (
                json!({"monitor_types": ["x".repeat(201)]}),
                ok_then.clone(),
                "when.monitor_types[0]",
            ),
            (
                json!({"customer_ids": (0..51).collect::<Vec<u64>>()}),
                ok_then.clone(),
                "when.customer_ids",
            ),
            (
                json!({"message": {"contains": ""}}),
                ok_then.clone(),
                "when.message.contains",
            ),
            (json!({}), json!({"route": {}}), "then.route"),
            (
                json!({}),
                json!({"route": {"custom_fields": {"a": [1]}}}),
                "then.route.custom_fields.a",
            ),
            (
                json!({}),
                json!({"route": {"custom_fields": {"": 1}}}),
                "then.route.custom_fields.",
            ),
        ];
        for (when, then, field) in table {
            let r = rule(1, "r", when, then);
            match r.validate() {
                Err(DomainError::Validation { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected a validation error, got {other:?}"),
            }
        }
        let unnamed = rule(1, " ", json!({}), ok_then.clone());
        assert!(matches!(unnamed.validate(), Err(DomainError::Validation { field, .. }) if field == "name"));
        let twice = [
            rule(1, "a", json!({}), ok_then.clone()),
            rule(1, "b", json!({}), ok_then),
        ];
        assert!(matches!(validate_rules(&twice), Err(DomainError::Validation { field, .. }) if field == "rules[1].id"));
    }

    #[test]
    fn patterns_are_checked_when_parsed_and_bounded() {
        assert!(DevicePattern::parse("").is_err());
        assert!(DevicePattern::parse(&"a".repeat(201)).is_err());
        // Regex syntax in a glob is literal.
        let p = DevicePattern::parse("srv(1)+.x").unwrap();
        assert!(p.matches("SRV(1)+.X"));
        assert!(!p.matches("srv11.x"));
        assert!(TextPattern::parse("(unclosed")
            .unwrap_err()
            .starts_with("is not a valid pattern"));
        assert_eq!(TextPattern::parse("(a{100}){100}").unwrap_err(), "is too complex");
        // Through serde, a bad pattern names its place.
        let bad = json!({"id": 1, "name": "r", "when": {"device_names": ["ok", ""]}, "then": "suppress"});
        let err = serde_path_to_error::deserialize::<_, RoutingRule>(bad).unwrap_err();
        assert_eq!(err.path().to_string(), "when.device_names[1]");
        assert!(err.to_string().contains("must not be empty"), "{err}");
        let bad = json!({"id": 1, "name": "r", "then": {"route": {"priority": "urgent"}}});
        let err = serde_path_to_error::deserialize::<_, RoutingRule>(bad).unwrap_err();
        assert_eq!(err.path().to_string(), "then.route.priority");
    }

    #[test]
    fn rules_round_trip_through_json_as_written() {
        let v = json!({"id": 3, "name": "Backups", "when": {"message": {"regex": "backup .* failed"},
            "device_names": ["*-NAS"]}, "then": {"route": {"priority": "high"}}});
        let r: RoutingRule = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
        assert_eq!(r.validate(), Ok(()));
    }
}
