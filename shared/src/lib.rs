//! deskbridge: the bridge between an MSP's Datto RMM and BeyondTrust Remote Support and
//! its service desk. Everything but process wiring lives in this crate.

pub mod adapters;
pub mod beyondtrust;
#[cfg(feature = "aws")]
pub mod cold_start;
pub mod config;
pub mod datto;
pub mod domain;
pub mod error;
#[cfg(feature = "aws")]
pub mod hosting;
pub mod http;
pub mod intake;
pub mod jobs;
pub mod ports;
pub mod retry;
pub mod services;
pub mod store;
#[cfg(any(feature = "local", feature = "aws"))]
pub mod telemetry;

pub use error::{Error, Result};
