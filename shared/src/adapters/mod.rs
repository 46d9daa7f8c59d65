//! Implementations of the ports: AWS services for Lambda, embedded ones for the local
//! server. Nothing outside this module knows which adapter sits behind a port.
pub mod dynamo;
pub mod dynamo_capacity;
pub mod outbox;
pub mod secrets_file;
pub mod secrets_manager;
pub mod ses;
pub mod sqlite_queue;
pub mod sqlite_store;
pub mod sqs;

pub use sqlite_queue::SqliteQueue;
pub use sqlite_store::SqliteRecordStore;
pub mod s3_mail;
