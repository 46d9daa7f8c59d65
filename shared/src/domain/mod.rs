//! Pure types and rules of deskbridge: the service-desk core, alerts, remote sessions.
//! Nothing here does I/O or imports an AWS, Lambda, HTTP or SQL crate.

pub mod accounts;
pub mod alert_context;
pub mod alerts;
pub mod bt;
pub mod chats;
pub mod datto;
pub mod desk;
pub mod ids;
pub mod json;
pub mod noise;
pub mod remote;
pub mod tickets;

/// A decision the domain refused, independent of how the request arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field is missing or holds a value the rules refuse.
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// A referenced record does not exist.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// The request contradicts the current state (closing a closed ticket, ...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        DomainError::NotFound {
            kind,
            id: id.to_string(),
        }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            code,
            message: message.into(),
        }
    }
}

/// A trimmed, non-empty text of at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, DomainError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(DomainError::invalid(field, format!("must be at most {max} characters")));
    }
    if let Some(c) = v.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(DomainError::invalid(
            field,
            format!("must not contain control characters (found U+{:04X})", u32::from(c)),
        ));
    }
    Ok(v.to_string())
}

/// Like `required_text`, but absent or blank becomes `None`.
pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, DomainError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => required_text(field, v, max).map(Some),
    }
}

/// A plausible e-mail address (one `@`, something on both sides, a dot in the domain).
pub fn email(field: &str, value: &str) -> Result<String, DomainError> {
    let v = required_text(field, value, 254)?;
    let ok = match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !v.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if ok {
        Ok(v)
    } else {
        Err(DomainError::invalid(field, "must be an e-mail address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_refuses_nul_and_other_control_characters_but_keeps_line_breaks() {
        assert_eq!(
            required_text("summary", "Disk\u{0}full", 100),
            Err(DomainError::invalid(
                "summary",
                "must not contain control characters (found U+0000)"
            ))
        );
        assert!(required_text("summary", "bell\u{7}", 100).is_err());
        assert!(optional_text("details", Some("esc\u{1b}[31m"), 100).is_err());
        assert_eq!(
            required_text("details", "line 1\r\nline 2\tend", 100).unwrap(),
            "line 1\r\nline 2\tend"
        );
    }

    #[test]
    fn required_text_trims_and_names_the_field() {
        assert_eq!(required_text("name", "  Acme ", 10).unwrap(), "Acme");
        assert_eq!(
            required_text("name", "   ", 10),
            Err(DomainError::invalid("name", "must not be empty"))
        );
        assert!(matches!(
            required_text("name", "abcdefghijk", 10),
            Err(DomainError::Validation { field, .. }) if field == "name"
        ));
    }

    #[test]
    fn email_accepts_addresses_and_refuses_the_rest() {
        assert!(email("email", "jane.doe@contoso.example").is_ok());
        for bad in ["jane", "jane@", "@x.com", "a@b", "a b@c.d", "a@@c.d", "a@.c"] {
            assert!(email("email", bad).is_err(), "{bad} should be refused");
        }
    }
}
