//! Typed record ids (ticket, customer, site, user, agent, team, ticket type, chat, remote
//! session) so that a service signature cannot take one for another; JSON shows bare numbers.

use std::fmt;
use std::str::FromStr;

macro_rules! record_ids {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = u64)]
        pub struct $name(pub u64);

        impl $name {
            /// The number as the store keys it.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl From<u64> for $name {
            fn from(id: u64) -> Self {
                $name(id)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    )*};
}

record_ids!(
    /// A ticket's number.
    TicketId,
    /// A customer's id.
    CustomerId,
    /// A site's id.
    SiteId,
    /// An end user's id.
    UserId,
    /// An agent's id.
    AgentId,
    /// A team's id.
    TeamId,
    /// A ticket type's id.
    TicketTypeId,
    /// A live chat's id.
    ChatId,
    /// A stored remote session's id (not BeyondTrust's lsid).
    RemoteSessionId,
    /// A stored remote support invitation's id.
    RemoteInviteId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bare_numbers_in_json_and_parse_from_text() {
        assert_eq!(serde_json::to_string(&TicketId(1042)).unwrap(), "1042");
        assert_eq!(serde_json::from_str::<AgentId>("7").unwrap(), AgentId(7));
        assert_eq!("12".parse::<ChatId>().unwrap(), ChatId(12));
        assert!("x".parse::<TeamId>().is_err());
        assert_eq!(u64::from(SiteId(3)), 3);
        assert_eq!(CustomerId::from(4).to_string(), "4");
    }
}
