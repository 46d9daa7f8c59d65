//! The one integration-test binary: contract suites per port, HTTP scenarios, Lambda event
//! paths. (The binary as a child process is tested in `infra/local/tests/binary.rs`.)

mod accounts;
mod alert_properties;
mod api_core;
mod bad_input;
mod bad_input_table;
mod bt_e2e;
mod bt_fidelity;
mod bt_lambda;
mod bt_local;
mod console;
mod contract;
mod datto_e2e;
mod desk;
mod dynamo_capacity;
mod dynamo_retry;
mod helpers;
mod intake_datto;
mod intake_lambda;
mod jobs_close;
mod jobs_lambda;
mod jobs_sync;
mod lambda_events;
mod lambda_process;
mod noise;
mod openapi;
mod scripted_datto;
mod secrets;
mod security;
mod store_faults;
mod sync_batches;
mod template;
mod tidy;
mod vendor_faults;
mod vendor_fidelity;
mod vendor_tokens;
