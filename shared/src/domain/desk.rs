//! The service-desk core kinds other than tickets and chats: customers and their sites,
//! end users, agents, teams and ticket types, with the rules for creating and editing them.

use serde::{Deserialize, Serialize};

use super::accounts::Role;
use super::{email, optional_text, required_text, DomainError};

/// Ticket priority, from most to least urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Medium,
    Low,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Customer {
    pub id: u64,
    pub name: String,
    pub main_site_id: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Site {
    pub id: u64,
    pub customer_id: u64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datto_site_uid: Option<String>,
}

/// An end user of a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub customer_id: u64,
}

/// A technician working tickets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Agent {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub bt_enabled: bool,
    pub bt_name: Option<String>,
    /// `technician` for agents stored before accounts existed.
    #[serde(default)]
    pub role: Role,
    /// A disabled agent cannot sign in; its sessions and tokens stop working at once.
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Team {
    pub id: u64,
    pub bt_team_id: Option<String>,
    pub name: String,
    pub display_name: String,
    pub enabled: bool,
    pub is_default: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketType {
    pub id: u64,
    pub name: String,
    pub default_priority: Priority,
    /// Send a BeyondTrust invitation when a ticket of this type is created.
    pub send_remote_invite_on_create: bool,
    /// The type new tickets get when none is named. At most one type has it.
    pub is_default: bool,
}

// ---- inputs -----------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewCustomer {
    pub name: String,
    #[serde(default)]
    pub main_site: Option<NewMainSite>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewMainSite {
    pub name: String,
}

impl NewCustomer {
    /// The validated customer name and main-site name ("Main" unless given).
    pub fn validate(&self) -> Result<(String, String), DomainError> {
        let name = required_text("name", &self.name, 200)?;
        let site = match &self.main_site {
            Some(s) => required_text("main_site.name", &s.name, 200)?,
            None => "Main".to_string(),
        };
        Ok((name, site))
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CustomerUpdate {
    pub name: Option<String>,
    pub main_site_id: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewSite {
    pub customer_id: u64,
    pub name: String,
    #[serde(default)]
    pub datto_site_uid: Option<String>,
}

impl NewSite {
    pub fn validate(&self) -> Result<(String, Option<String>), DomainError> {
        Ok((
            required_text("name", &self.name, 200)?,
            optional_text("datto_site_uid", self.datto_site_uid.as_deref(), 100)?,
        ))
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct SiteUpdate {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    pub customer_id: u64,
}

impl NewUser {
    pub fn validate(&self) -> Result<(String, String), DomainError> {
        Ok((required_text("name", &self.name, 200)?, email("email", &self.email)?))
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct UserUpdate {
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewAgent {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub bt_enabled: bool,
    #[serde(default)]
    pub bt_name: Option<String>,
    /// `technician` unless named.
    #[serde(default)]
    pub role: Role,
}

impl NewAgent {
    pub fn into_agent(self, id: u64) -> Result<Agent, DomainError> {
        Ok(Agent {
            id,
            name: required_text("name", &self.name, 200)?,
            email: email("email", &self.email)?,
            bt_enabled: self.bt_enabled,
            bt_name: optional_text("bt_name", self.bt_name.as_deref(), 200)?,
            role: self.role,
            disabled: false,
        })
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub email: Option<String>,
    pub bt_enabled: Option<bool>,
    /// `Some(None)` (JSON null) clears the name.
    #[serde(default, deserialize_with = "double_option")]
    pub bt_name: Option<Option<String>>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

impl AgentUpdate {
    pub fn apply(self, agent: &mut Agent) -> Result<(), DomainError> {
        if let Some(n) = self.name {
            agent.name = required_text("name", &n, 200)?;
        }
        if let Some(e) = self.email {
            agent.email = email("email", &e)?;
        }
        if let Some(b) = self.bt_enabled {
            agent.bt_enabled = b;
        }
        if let Some(n) = self.bt_name {
            agent.bt_name = optional_text("bt_name", n.as_deref(), 200)?;
        }
        if let Some(r) = self.role {
            agent.role = r;
        }
        if let Some(d) = self.disabled {
            agent.disabled = d;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewTeam {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub bt_team_id: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub is_default: bool,
}

impl NewTeam {
    pub fn into_team(self, id: u64) -> Result<Team, DomainError> {
        let name = required_text("name", &self.name, 200)?;
        let display_name =
            optional_text("display_name", self.display_name.as_deref(), 200)?.unwrap_or_else(|| name.clone());
        Ok(Team {
            id,
            bt_team_id: optional_text("bt_team_id", self.bt_team_id.as_deref(), 50)?,
            name,
            display_name,
            enabled: self.enabled,
            is_default: self.is_default,
        })
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TeamUpdate {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub enabled: Option<bool>,
    pub is_default: Option<bool>,
}

impl TeamUpdate {
    pub fn apply(self, team: &mut Team) -> Result<(), DomainError> {
        if let Some(n) = self.name {
            team.name = required_text("name", &n, 200)?;
        }
        if let Some(n) = self.display_name {
            team.display_name = required_text("display_name", &n, 200)?;
        }
        if let Some(e) = self.enabled {
            team.enabled = e;
        }
        if let Some(d) = self.is_default {
            team.is_default = d;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewTicketType {
    pub name: String,
    #[serde(default)]
    pub default_priority: Priority,
    #[serde(default)]
    pub send_remote_invite_on_create: bool,
    #[serde(default)]
    pub is_default: bool,
}

impl NewTicketType {
    pub fn into_ticket_type(self, id: u64) -> Result<TicketType, DomainError> {
        Ok(TicketType {
            id,
            name: required_text("name", &self.name, 200)?,
            default_priority: self.default_priority,
            send_remote_invite_on_create: self.send_remote_invite_on_create,
            is_default: self.is_default,
        })
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TicketTypeUpdate {
    pub name: Option<String>,
    pub default_priority: Option<Priority>,
    pub send_remote_invite_on_create: Option<bool>,
    pub is_default: Option<bool>,
}

impl TicketTypeUpdate {
    pub fn apply(self, t: &mut TicketType) -> Result<(), DomainError> {
        if let Some(n) = self.name {
            t.name = required_text("name", &n, 200)?;
        }
        if let Some(p) = self.default_priority {
            t.default_priority = p;
        }
        if let Some(s) = self.send_remote_invite_on_create {
            t.send_remote_invite_on_create = s;
        }
        if let Some(d) = self.is_default {
            t.is_default = d;
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}

/// Tells an absent field (`None`) from an explicit JSON `null` (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
