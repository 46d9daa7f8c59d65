//! The `SecretStore` contract, run against Secrets Manager (in moto, names under a prefix
//! unique to the test) and the local JSON file (a fresh temp folder per test).

use std::fmt::Debug;

use deskbridge::adapters::secrets_file::FileSecretStore;
use deskbridge::adapters::secrets_manager::SecretsManagerStore;
use deskbridge::ports::{SecretStore, SecretString};
use deskbridge_tests::emulators;

/// A store under test: the port plus Debug, so cases can check that values never print.
pub trait StoreUnderTest: SecretStore + Debug {}
impl<T: SecretStore + Debug> StoreUnderTest for T {}

async fn get(store: &dyn StoreUnderTest, name: &str) -> Option<String> {
    store.get(name).await.expect("get").map(|s| s.expose().to_string())
}

async fn put(store: &dyn StoreUnderTest, name: &str, value: &str) {
    store.put(name, &SecretString::new(value)).await.expect("put");
}

/// A name never written reads as `None`.
pub async fn a_secret_never_set_reads_as_none(store: &dyn StoreUnderTest) {
    assert_eq!(get(store, "datto-api").await, None);
}

/// A put value reads back exactly, including JSON, line breaks and non-ASCII text.
pub async fn a_put_secret_reads_back_exactly(store: &dyn StoreUnderTest) {
    let value = "{\"key\":\"AKIA…\",\"secret\":\"p@ss\\nwörd\"}\nsecond line \u{2713}";

    put(store, "datto-api", value).await;

    assert_eq!(get(store, "datto-api").await.as_deref(), Some(value));
}

/// A second put replaces the value; names are independent of each other.
pub async fn a_second_put_replaces_only_that_name(store: &dyn StoreUnderTest) {
    put(store, "datto-api", "first").await;
    put(store, "beyondtrust-api", "other").await;

    put(store, "datto-api", "second").await;

    assert_eq!(get(store, "datto-api").await.as_deref(), Some("second"));
    assert_eq!(get(store, "beyondtrust-api").await.as_deref(), Some("other"));
    assert_eq!(get(store, "webhook-token").await, None);
}

/// Neither the value read back nor the store itself shows a stored value in Debug output
/// (what `{:?}` in a log line or a panic message would print).
pub async fn values_never_appear_in_debug_output(store: &dyn StoreUnderTest) {
    let value = emulators::unique("hunter2");
    put(store, "event-token", &value).await;

    let read = store.get("event-token").await;

    assert_eq!(
        read.as_ref().ok().and_then(|s| s.as_ref()).map(SecretString::expose),
        Some(value.as_str())
    );
    for shown in [
        format!("{read:?}"),
        format!("{read:#?}"),
        format!("{store:?}"),
        format!("{store:#?}"),
    ] {
        assert!(!shown.contains(&value), "secret value printed: {shown}");
    }
}

/// Stamps one test per case for an adapter: `contract::secrets::<adapter>::<case>`.
/// `$fixture` is an async fn returning `Option<impl Fixture>` (None when its emulator is
/// not configured).
macro_rules! secrets_contract {
    ($adapter:ident, $fixture:path) => {
        mod $adapter {
            secrets_contract!(@cases $fixture;
                a_secret_never_set_reads_as_none,
                a_put_secret_reads_back_exactly,
                a_second_put_replaces_only_that_name,
                values_never_appear_in_debug_output,
            );
        }
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(fixture) = $fixture().await else { return };
                super::$case(fixture.store.as_ref()).await;
            }
        )*
    };
}

secrets_contract!(secrets_manager_in_moto, super::secrets_manager_fixture);
secrets_contract!(file, super::file_fixture);

/// A store and whatever must live as long as it.
struct Fixture {
    store: Box<dyn StoreUnderTest>,
    _dir: Option<tempfile::TempDir>,
}

async fn secrets_manager_fixture() -> Option<Fixture> {
    let endpoint = emulators::moto()?;
    let client = aws_sdk_secretsmanager::Client::new(&emulators::aws_config(&endpoint).await);
    let prefix = format!("{}/", emulators::unique("deskbridge-test"));
    Some(Fixture {
        store: Box::new(SecretsManagerStore::new(client, prefix)),
        _dir: None,
    })
}

async fn file_fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    Some(Fixture {
        store: Box::new(FileSecretStore::new(dir.path().join("secrets.json")).expect("secret file")),
        _dir: Some(dir),
    })
}

/// The prefix keeps stores apart: the same name under two prefixes is two secrets.
#[tokio::test]
async fn secrets_manager_names_live_under_the_prefix() {
    let Some(endpoint) = emulators::moto() else {
        return;
    };
    let client = aws_sdk_secretsmanager::Client::new(&emulators::aws_config(&endpoint).await);
    let base = emulators::unique("deskbridge-test");
    let prod = SecretsManagerStore::new(client.clone(), format!("{base}/prod/"));
    let dev = SecretsManagerStore::new(client.clone(), format!("{base}/dev/"));

    prod.put("datto-api", &SecretString::new("prod-value"))
        .await
        .expect("put");

    assert_eq!(dev.get("datto-api").await.expect("get"), None);
    let stored = client
        .get_secret_value()
        .secret_id(format!("{base}/prod/datto-api"))
        .send()
        .await
        .expect("the secret under its prefixed name");
    assert_eq!(stored.secret_string(), Some("prod-value"));
}
