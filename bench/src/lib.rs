//! deskbridge's benchmarks as a library, so `scripts/bench` (through the `deskbridge-bench`
//! binary) and the smoke test run the same code: ingest, sync, DynamoDB capacity, the soak.

pub mod capacity;
pub mod floor;
pub mod ingest;
pub mod load;
pub mod procfs;
pub mod soak;
pub mod sync;
