//! Vendor access tokens shared across Lambda instances through the store: 20 cold clients
//! (fresh connect objects over one store, as 20 instances would build them) mint ONE
//! BeyondTrust and ONE Datto token; a revoked token (a 401) and an expired one are each
//! replaced once for everyone; the stored copy is sealed. On SQLite and DynamoDB Local.

use std::time::Duration;

use deskbridge::beyondtrust::fake::{FakeBeyondTrust, CLIENT_ID, CLIENT_SECRET};
use deskbridge::beyondtrust::RetryPolicy;
use deskbridge::datto::fake::{FakeDatto, RecordingSleeper};
use deskbridge::ports::Clock;
use deskbridge::ports::DattoConnect;
use deskbridge::store::vendor_tokens::TOKEN_PK;
use futures::future::join_all;
use serde_json::json;

use crate::desk::{on_both_stores, Desk};

/// As many clients as Lambda instances starting together.
const INSTANCES: usize = 20;

fn bt_instances(d: &Desk) -> Vec<deskbridge::beyondtrust::connect::SettingsConnect> {
    (0..INSTANCES)
        .map(|_| {
            deskbridge::beyondtrust::connect::SettingsConnect::new(d.ctx.store.clone(), d.ctx.secrets.clone(), true)
                .with_retry(RetryPolicy::immediate(2))
        })
        .collect()
}

/// One `get_api_info` per instance, all at once.
async fn bt_calls(instances: &[deskbridge::beyondtrust::connect::SettingsConnect]) {
    use deskbridge::beyondtrust::connect::BeyondTrustConnect;
    let calls = instances.iter().map(|c| async move {
        let client = c.connect().await.unwrap().expect("configured");
        client.get_api_info().await
    });
    for result in join_all(calls).await {
        result.unwrap();
    }
}

/// The stored record of `vendor`, as text.
async fn stored(d: &Desk, vendor: &str) -> String {
    let record = d.ctx.store.records().get(TOKEN_PK, vendor).await.unwrap();
    record.expect("a shared token record").data.to_string()
}

async fn twenty_cold_beyondtrust_clients_mint_one_token_and_replace_it_once(d: Desk) {
    let (_, fake) = FakeBeyondTrust::start().await;
    let (s, v) = d
        .put(
            "/api/config/beyondtrust",
            json!({"base_url": fake.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let cold = bt_instances(&d);
    bt_calls(&cold).await;
    assert_eq!(fake.tokens_minted(), 1, "twenty cold starts, one token");
    assert_eq!(fake.calls("get_api_info"), INSTANCES as u32);
    let record = stored(&d, "beyondtrust").await;
    assert!(
        !record.contains("fake-token") && !record.contains(CLIENT_ID),
        "sealed: {record}"
    );
    let (_, config) = d.get("/api/config/beyondtrust").await;
    assert!(!config.to_string().contains("fake-token"), "{config}");

    // Revoked (the secret was regenerated, or a 31st token pushed ours out): every
    // instance gets a 401, and one new token serves them all.
    fake.revoke_tokens();
    bt_calls(&cold).await;
    assert_eq!(fake.tokens_minted(), 2, "a 401 leads to one re-mint, shared");
    assert_eq!(
        fake.calls("get_api_info"),
        3 * INSTANCES as u32,
        "one 401 and one retry each"
    );

    // Expired: the next cold starts replace it once.
    d.clock.advance(Duration::from_secs(3601));
    bt_calls(&bt_instances(&d)).await;
    assert_eq!(fake.tokens_minted(), 3, "an expired shared token is replaced once");
}

fn datto_instances(d: &Desk) -> Vec<deskbridge::datto::connect::SettingsConnect> {
    (0..INSTANCES)
        .map(|_| {
            deskbridge::datto::connect::SettingsConnect::new(d.ctx.store.clone(), d.ctx.secrets.clone(), true)
                .with_sleeper(RecordingSleeper::new(d.clock.clone()))
        })
        .collect()
}

/// One "Test configuration" call (`GET /v2/account`) per instance, all at once.
async fn datto_calls(instances: &[deskbridge::datto::connect::SettingsConnect]) {
    let calls = instances
        .iter()
        .map(|c| async move { c.connect().await.unwrap().expect("configured").check().await });
    for result in join_all(calls).await {
        result.unwrap();
    }
}

async fn twenty_cold_datto_clients_mint_one_token_and_replace_it_once(d: Desk) {
    d.configure_datto().await;
    let clock: std::sync::Arc<dyn Clock> = d.clock.clone();
    let fake = FakeDatto::start_with_clock(clock).await;
    fake.seed_fixtures();
    let (_, mut cfg) = d.get("/api/config/datto").await;
    cfg["api_url"] = json!(fake.base_url());
    cfg["api_key"] = json!(FakeDatto::API_KEY);
    cfg["api_secret"] = json!(FakeDatto::API_SECRET);
    let (s, v) = d.put("/api/config/datto", cfg).await;
    assert_eq!(s, 200, "{v}");

    let cold = datto_instances(&d);
    datto_calls(&cold).await;
    assert_eq!(fake.tokens_minted(), 1, "twenty cold starts, one token");
    assert_eq!(fake.count("/auth/oauth/token"), 1, "one token request from the budget");
    assert_eq!(fake.count("/api/v2/account"), INSTANCES);
    let record = stored(&d, "datto").await;
    assert!(
        !record.contains("fake-token") && !record.contains(FakeDatto::API_KEY),
        "sealed: {record}"
    );

    fake.expire_tokens();
    datto_calls(&cold).await;
    assert_eq!(fake.tokens_minted(), 2, "a 401 leads to one re-mint, shared");
    assert_eq!(fake.count("/api/v2/account"), 3 * INSTANCES);

    // Datto tokens live 100 hours; past that, the next cold starts replace it once.
    d.clock.advance(Duration::from_secs(360_000));
    datto_calls(&datto_instances(&d)).await;
    assert_eq!(fake.tokens_minted(), 3, "an expired shared token is replaced once");
}

on_both_stores!(
    twenty_cold_beyondtrust_clients_mint_one_token_and_replace_it_once,
    twenty_cold_datto_clients_mint_one_token_and_replace_it_once,
);
