//! Creates template.yaml's stack on the running emulators and prints one function's
//! environment as an env file (KEY=VALUE lines); scripts/invoke runs the function with it.
//!
//! Usage: `lambda-stack <function>` with DESKBRIDGE_TEST_DYNAMODB_URL and
//! DESKBRIDGE_TEST_MOTO_URL set (`scripts/test --emulators-only` prints them). The API token
//! secret holds `DESKBRIDGE_API_TOKEN` (default: the recorded events' `test-token-0123456789`);
//! the Datto webhook state and the BeyondTrust event token are the recorded events' values,
//! and the recorded SES event's mail is in the bucket, so tests/events/*.json authenticate.

use anyhow::Context;
use deskbridge::ports::{SecretStore, SecretString};
use deskbridge_tests::lambda_host::{event_file, Stack, Template};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let name = std::env::args().nth(1).context("usage: lambda-stack <function>")?;
    let token = std::env::var("DESKBRIDGE_API_TOKEN").unwrap_or_else(|_| "test-token-0123456789".into());
    let template = Template::load();
    let id = template
        .function_id(&name)
        .with_context(|| format!("template.yaml has no function for {name}"))?;
    let stack = Stack::create(&template, &token)
        .await
        .context("the emulators are not configured (DESKBRIDGE_TEST_DYNAMODB_URL, DESKBRIDGE_TEST_MOTO_URL)")?;
    let secrets = deskbridge::adapters::secrets_manager::SecretsManagerStore::new(
        stack.secrets.clone(),
        format!("deskbridge/{}/", stack.stage),
    );
    let state = deskbridge::datto::state::WebhookState {
        current: "s3cr3t-example".into(),
        previous: None,
        rotated_at: None,
    };
    secrets
        .put(
            deskbridge::datto::state::SECRET_NAME,
            &SecretString::new(serde_json::to_string(&state)?),
        )
        .await?;
    secrets
        .put(
            deskbridge::beyondtrust::connect::EVENT_TOKEN,
            &SecretString::new("btevt_4Qm9Zr2LxV7nK3pW"),
        )
        .await?;
    if let Some(bucket) = stack.value("InboundMailBucket") {
        let ses = event_file("ses-inbound-mail.json");
        let message_id = ses["Records"][0]["ses"]["mail"]["messageId"]
            .as_str()
            .context("the recorded SES event has a message id")?;
        let mail = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/datto/alert-email.eml"))?;
        stack
            .s3
            .put_object()
            .bucket(bucket)
            .key(format!("inbound/{message_id}"))
            .body(mail.into())
            .send()
            .await?;
    }
    for (key, value) in stack.function_env(&template, &id) {
        println!("{key}={value}");
    }
    Ok(())
}
