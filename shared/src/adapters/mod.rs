//! Implementations of the ports: AWS services for Lambda, embedded ones for the local
//! server. Nothing outside this module knows which adapter sits behind a port.
//!
//! The local ones (SQLite, outbox folder, secrets file) exist only with the `local` feature
//! (and in this crate's unit tests), so no Lambda carries them; the AWS ones only with the
//! `aws` feature, so the local server and the fuzz targets compile no AWS SDK.
#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "aws")]
pub mod dynamo_capacity;
#[cfg(feature = "aws")]
pub mod s3_mail;
#[cfg(feature = "aws")]
pub mod secrets_manager;
#[cfg(feature = "aws")]
pub mod ses;
#[cfg(feature = "aws")]
pub mod sqs;
#[cfg(feature = "aws")]
pub mod unwired;

#[cfg(any(test, feature = "local"))]
pub mod outbox;
#[cfg(any(test, feature = "local"))]
pub mod record_cache;
#[cfg(any(test, feature = "local"))]
pub mod secrets_file;
#[cfg(any(test, feature = "local"))]
pub mod sqlite_queue;
#[cfg(any(test, feature = "local"))]
pub mod sqlite_store;

#[cfg(any(test, feature = "local"))]
pub use sqlite_queue::SqliteQueue;
#[cfg(any(test, feature = "local"))]
pub use sqlite_store::SqliteRecordStore;
