//! BeyondTrust settings and stored invitations as the desk keeps them (the client secret
//! and the event token live in the secret store, never here).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;

/// The texts of an invitation; `$REMOTEINVITE`, `$LINKTOREMOTE` and `$REMOTESESSIONCODE`
/// are filled in (see `domain::remote::render_invite`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InviteTemplates {
    #[serde(default = "default_remote_invite")]
    pub remote_invite: String,
    #[serde(default = "default_email_subject")]
    pub email_subject: String,
    #[serde(default = "default_email_body")]
    pub email_body: String,
    #[serde(default = "default_chat_html")]
    pub chat_html: String,
}

fn default_remote_invite() -> String {
    "To start the remote support session, open $LINKTOREMOTE or enter the code $REMOTESESSIONCODE on our support site."
        .to_string()
}
fn default_email_subject() -> String {
    "Remote support session".to_string()
}
fn default_email_body() -> String {
    "Hello,\n\n$REMOTEINVITE\n\nKind regards,\nService Desk".to_string()
}
fn default_chat_html() -> String {
    "<p>$REMOTEINVITE</p>".to_string()
}

impl Default for InviteTemplates {
    fn default() -> Self {
        InviteTemplates {
            remote_invite: default_remote_invite(),
            email_subject: default_email_subject(),
            email_body: default_email_body(),
            chat_html: default_chat_html(),
        }
    }
}

/// The non-secret BeyondTrust settings (DESIGN §3 "beyondtrust config").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BeyondTrustSettings {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    /// The user that stands in for sessions that have none.
    #[serde(default)]
    pub default_user_id: Option<u64>,
    #[serde(default)]
    pub allow_invites_for_others: bool,
    #[serde(default)]
    pub disable_quick_invites: bool,
    #[serde(default)]
    pub only_generated_here: bool,
    #[serde(default)]
    pub fallback_to_default_team: bool,
    #[serde(default)]
    pub templates: InviteTemplates,
    /// Sender address of invitation e-mails.
    #[serde(default = "default_from")]
    pub email_from: String,
}

fn default_from() -> String {
    "servicedesk@example.com".to_string()
}

impl Default for BeyondTrustSettings {
    /// The settings before anything was saved: everything off, default templates.
    fn default() -> Self {
        BeyondTrustSettings {
            base_url: None,
            client_id: None,
            default_user_id: None,
            allow_invites_for_others: false,
            disable_quick_invites: false,
            only_generated_here: false,
            fallback_to_default_team: false,
            templates: InviteTemplates::default(),
            email_from: default_from(),
        }
    }
}

impl BeyondTrustSettings {
    pub fn validate(&self) -> Result<(), DomainError> {
        for (field, v) in [
            ("templates.remote_invite", &self.templates.remote_invite),
            ("templates.email_subject", &self.templates.email_subject),
            ("templates.email_body", &self.templates.email_body),
            ("templates.chat_html", &self.templates.chat_html),
        ] {
            if v.len() > 20_000 {
                return Err(DomainError::invalid(field, "must be at most 20000 characters"));
            }
        }
        if self.templates.email_subject.contains(['\r', '\n']) {
            return Err(DomainError::invalid("templates.email_subject", "must be one line"));
        }
        let from = self.email_from.trim();
        if from.is_empty() || !from.contains('@') || from.contains(char::is_whitespace) {
            return Err(DomainError::invalid("email_from", "must be an e-mail address"));
        }
        Ok(())
    }

    /// True when the API can be called (URL and client id set; the secret is checked apart).
    pub fn api_configured(&self) -> bool {
        self.base_url.is_some() && self.client_id.is_some()
    }
}

/// A stored invitation (one generated session key, or a blank invite without a queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemoteInvite {
    pub id: u64,
    /// `T<ticket id>` or `C<chat id>`.
    pub external_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<u64>,
    /// `rep:<id>` or `team:<id>`; `None` when there was nothing to invite into.
    pub queue: Option<String>,
    pub short_key: Option<String>,
    pub key_url: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `quick`, `action`, `chat` or `automatic`.
    pub via: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<u64>,
    /// Where the e-mail went, if one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_to: Option<String>,
    /// The invitation mail could not be sent (the key exists all the same): to whom and
    /// why. Cleared by a successful resend (`POST /api/remote-invites/{id}/resend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_failed: Option<EmailFailure>,
    pub created_at: DateTime<Utc>,
}

/// An invitation mail that did not go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmailFailure {
    pub to: String,
    pub reason: String,
}
