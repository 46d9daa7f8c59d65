//! A Lambda whose handler panics on `{"panic": true}` and echoes anything else: the test of
//! the panic policy runs it against the fake Runtime API (tests/it/lambda_process.rs).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        if event.payload["panic"] == Value::Bool(true) {
            panic!("the probe was asked to panic");
        }
        Ok::<_, Error>(event.payload)
    }))
    .await
}
