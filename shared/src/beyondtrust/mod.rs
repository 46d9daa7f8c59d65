//! BeyondTrust Remote Support: the OAuth + command + reporting API client, the XML answers
//! it reads, outbound-event parsing, and a stateful fake appliance for tests.
//!
//! Wire types live here and convert into `domain::remote` types at the edge
//! ([`SupportSessionReport::to_facts`], [`LoggedInRep::names`], [`QueueId::from`]).
//! Vendor facts and their confidence: `vendor/beyondtrust.md` of the project notes.

mod client;
mod command;
pub mod connect;
pub mod events;
#[cfg(any(test, feature = "fakes"))]
pub mod fake;
#[cfg(any(test, feature = "fakes"))]
pub mod fixtures;
mod report;
#[cfg(test)]
mod tests;
mod xml;

pub use client::{default_retry, Client, ClientConfig, ConfigCheck, RetryPolicy, TokenCache, TOKEN_VENDOR};
pub use command::{
    find_logged_in_rep, ApiInfo, LoggedInRep, QueueId, SessionKey, SessionKeyRequest, SupportTeam, TeamIssue,
    TeamMember, EXTERNAL_KEY_MAX,
};
pub use events::{OutboundEvent, Received, Unusable};
pub use report::{
    session_listing_from_xml, Actor, Completeness, Customer, CustomerInfo, ListingWindow, ReportEvent, Representative,
    SessionSummary, SupportSessionReport,
};

/// Why a BeyondTrust call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The appliance answered with an `<error>` document (usually with HTTP 200): free
    /// text such as "no sessions matched" or a refused `generate_session_key`.
    #[error("BeyondTrust API error: {0}")]
    Api(String),
    /// HTTP 401 even with a freshly minted token, or the token endpoint refused the
    /// client id/secret.
    #[error("BeyondTrust refused the API credentials (HTTP 401)")]
    Unauthorized,
    /// HTTP 403: the API account lacks a permission, or the XML API is switched off.
    #[error("BeyondTrust refused the call (HTTP 403): check the API account's permissions")]
    Forbidden,
    /// Transport failure, timeout, 429, 5xx or another unexpected status, after retries.
    #[error("BeyondTrust unavailable: {0}")]
    Unavailable(String),
    /// The answer was not the XML/JSON expected.
    #[error("malformed BeyondTrust response: {0}")]
    Malformed(String),
    /// The client was configured or called with values the API cannot take.
    #[error("invalid BeyondTrust request: {0}")]
    Invalid(String),
}

impl Error {
    /// True when the same call may succeed later without a configuration change.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}
