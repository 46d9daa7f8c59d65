//! Everything Datto RMM speaks: monitor webhook bodies, alert e-mails, the payloads the
//! setup helper shows, and the REST API client. Wire types stay here; the domain gets facts.

pub mod mail;
pub mod setup;
pub mod state;
pub mod webhook;

pub mod api;
pub mod budget;
pub mod client;
pub mod connect;
#[cfg(any(test, feature = "fakes"))]
pub mod fake;
pub use crate::store::TokenCache;
pub use budget::{BudgetConfig, RequestBudget};
pub use client::{default_retry, Client, ClientConfig, DattoBaseUrl, Error, ResolveOutcome, Sleeper, TokioSleeper};
