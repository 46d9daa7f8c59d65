//! Datto RMM settings as the desk sees them: how alerts arrive, how Datto sites become
//! customers and sites, and how Datto priorities map onto ticket priorities.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::desk::Priority;
use super::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertMethod {
    #[default]
    Webhook,
    Email,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Every Datto site becomes a customer with that site as its main site.
    #[default]
    CustomerPerSite,
    /// Every Datto site becomes a site of one configured customer.
    SingleCustomer,
}

/// Datto's priority words (`Critical`, `High`, `Moderate`, `Low`, `Information`, `Unknown`)
/// mapped to ticket priorities; words are compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct PriorityMap(pub BTreeMap<String, Priority>);

impl Default for PriorityMap {
    fn default() -> Self {
        PriorityMap(
            [
                ("Critical", Priority::Critical),
                ("High", Priority::High),
                ("Moderate", Priority::Medium),
                ("Low", Priority::Low),
                ("Information", Priority::Low),
                ("Unknown", Priority::Medium),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        )
    }
}

impl PriorityMap {
    /// The ticket priority for a Datto word; unknown or absent words map like `Unknown`,
    /// or to `fallback` when the table has no `Unknown` row.
    pub fn map(&self, datto: Option<&str>, fallback: Priority) -> Priority {
        let find = |w: &str| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(w.trim()))
                .map(|(_, v)| *v)
        };
        datto.and_then(find).or_else(|| find("Unknown")).unwrap_or(fallback)
    }
}

/// The non-secret Datto settings (API key and secret live in the secret store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DattoSettings {
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub alert_method: AlertMethod,
    /// The address alert e-mails must come from.
    #[serde(default)]
    pub from_address: Option<String>,
    #[serde(default)]
    pub default_ticket_type_id: Option<u64>,
    #[serde(default)]
    pub import_mode: ImportMode,
    #[serde(default)]
    pub import_customer_id: Option<u64>,
    #[serde(default = "five")]
    pub sync_interval_minutes: u32,
    #[serde(default)]
    pub priority_map: PriorityMap,
}

fn five() -> u32 {
    5
}

impl Default for DattoSettings {
    fn default() -> Self {
        DattoSettings {
            api_url: None,
            api_key: None,
            alert_method: AlertMethod::default(),
            from_address: None,
            default_ticket_type_id: None,
            import_mode: ImportMode::default(),
            import_customer_id: None,
            sync_interval_minutes: 5,
            priority_map: PriorityMap::default(),
        }
    }
}

impl DattoSettings {
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.import_mode == ImportMode::SingleCustomer && self.import_customer_id.is_none() {
            return Err(DomainError::invalid(
                "import_customer_id",
                "is required when import_mode is single_customer",
            ));
        }
        if !(1..=1440).contains(&self.sync_interval_minutes) {
            return Err(DomainError::invalid(
                "sync_interval_minutes",
                "must be between 1 and 1440",
            ));
        }
        if let Some(a) = &self.from_address {
            super::email("from_address", a)?;
        }
        Ok(())
    }

    /// True when alert e-mails are accepted.
    pub fn accepts_email(&self) -> bool {
        matches!(self.alert_method, AlertMethod::Email | AlertMethod::Both)
    }
}

/// A Datto site uid as Datto hands them out (a UUID; any run of letters, digits, `-` and
/// `_` up to 64 characters is taken, so a fake's or an older account's uids pass too).
pub fn check_site_uid(field: &str, value: &str) -> Result<String, DomainError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(DomainError::invalid(
            field,
            "must be a Datto site uid (letters, digits, '-' and '_', at most 64)",
        ));
    }
    Ok(v.to_string())
}

/// Which customer site a Datto site's alerts land on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteMapping {
    pub datto_site_uid: String,
    pub customer_id: u64,
    pub site_id: u64,
}

/// True for a value that is exactly a Datto `[placeholder]`, i.e. one Datto did not fill.
pub fn is_placeholder(v: &str) -> bool {
    let v = v.trim();
    v.len() > 2
        && v.starts_with('[')
        && v.ends_with(']')
        && v[1..v.len() - 1].chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datto_priorities_map_case_insensitively_with_unknown_as_fallback() {
        let m = PriorityMap::default();
        assert_eq!(m.map(Some("high"), Priority::Low), Priority::High);
        assert_eq!(m.map(Some("Moderate"), Priority::Low), Priority::Medium);
        assert_eq!(m.map(Some("Whatever"), Priority::Low), Priority::Medium);
        assert_eq!(m.map(None, Priority::Low), Priority::Medium);
        let empty = PriorityMap(Default::default());
        assert_eq!(empty.map(Some("High"), Priority::Low), Priority::Low);
    }

    #[test]
    fn placeholders_are_bracketed_names_only() {
        assert!(is_placeholder("[alert_uid]"));
        assert!(is_placeholder(" [site_name] "));
        assert!(!is_placeholder("[]"));
        assert!(!is_placeholder("[not a placeholder]"));
        assert!(!is_placeholder("Disk [C:] full"));
    }
}
