//! `beyondtrust::Client` against the fake appliance: token reuse and re-minting, typed
//! errors, retries, timeouts, incomplete reports, and call counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::fake::{FakeBeyondTrust, FakeRep, Fault, TOKEN_ENDPOINT};
use super::{fixtures, Client, ClientConfig, Error, QueueId, RetryPolicy, SessionKeyRequest, TokenCache};
use crate::domain::remote::{ExternalKey, Lsid};
use crate::ports::{Clock, ManualClock, SecretString};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_420_000, 0).unwrap()
}

async fn setup() -> (FakeBeyondTrust, Client, Arc<ManualClock>) {
    let (_, fake) = FakeBeyondTrust::start().await;
    let clock = Arc::new(ManualClock::new(t0()));
    let client = Client::new(fake.client_config(), TokenCache::new(clock.clone())).unwrap();
    (fake, client, clock)
}

fn lsid(s: &str) -> Lsid {
    Lsid::parse(s).unwrap()
}

#[tokio::test]
async fn many_calls_share_one_token_and_every_call_closes_the_connection() {
    let (fake, client, _) = setup().await;

    for _ in 0..3 {
        client.get_api_info().await.unwrap();
    }
    client.get_logged_in_reps().await.unwrap();
    client.get_support_teams().await.unwrap();

    assert_eq!(fake.tokens_minted(), 1);
    assert_eq!(fake.calls("get_api_info"), 3);
    assert_eq!(fake.calls_without_connection_close(), 0);
}

#[tokio::test]
async fn clients_sharing_a_cache_and_concurrent_calls_mint_one_token() {
    let (fake, client, clock) = setup().await;
    let other = Client::new(fake.client_config(), TokenCache::new(clock.clone())).unwrap();
    let shared = Client::new(fake.client_config(), client_tokens(&client)).unwrap();

    let calls = (0..8).map(|_| client.get_logged_in_reps());
    let results = futures::future::join_all(calls).await;
    shared.get_api_info().await.unwrap();

    assert!(results.iter().all(Result::is_ok));
    assert_eq!(fake.tokens_minted(), 1, "one token per cache");
    other.get_api_info().await.unwrap();
    assert_eq!(fake.tokens_minted(), 2, "a separate cache mints its own");
}

/// The cache a client was built with (tests build clients from one cache explicitly).
fn client_tokens(client: &Client) -> TokenCache {
    client.token_cache().clone()
}

#[tokio::test]
async fn token_is_renewed_five_minutes_before_it_expires() {
    let (fake, client, clock) = setup().await;
    client.get_api_info().await.unwrap();

    clock.advance(Duration::from_secs(3600 - 301));
    client.get_api_info().await.unwrap();
    assert_eq!(fake.tokens_minted(), 1, "still valid for more than 5 minutes");

    clock.advance(Duration::from_secs(2));
    client.get_api_info().await.unwrap();
    assert_eq!(fake.tokens_minted(), 2, "renewed inside the last 5 minutes");
}

#[tokio::test]
async fn token_lifetime_comes_from_expires_in() {
    let (fake, client, clock) = setup().await;
    fake.set_token_lifetime(1799);
    client.get_api_info().await.unwrap();

    clock.advance(Duration::from_secs(1799 - 299));
    client.get_api_info().await.unwrap();

    assert_eq!(fake.tokens_minted(), 2);
}

#[tokio::test]
async fn a_revoked_token_is_reminted_once_and_the_call_retried() {
    let (fake, client, _) = setup().await;
    client.get_api_info().await.unwrap();
    fake.revoke_tokens();

    let reps = client.get_logged_in_reps().await.unwrap();

    assert_eq!(reps.len(), 2);
    assert_eq!(fake.tokens_minted(), 2);
    assert_eq!(fake.calls("get_logged_in_reps"), 2, "one 401, one success");
    client.get_api_info().await.unwrap();
    assert_eq!(fake.tokens_minted(), 2, "the new token is cached");
}

#[tokio::test]
async fn a_second_401_is_unauthorized_without_more_minting() {
    let (fake, client, _) = setup().await;
    for _ in 0..3 {
        fake.push_fault("get_api_info", Fault::Status(401));
    }

    let err = client.get_api_info().await.unwrap_err();

    assert_eq!(err, Error::Unauthorized);
    assert_eq!(fake.tokens_minted(), 2);
    assert_eq!(fake.calls("get_api_info"), 2);
}

#[tokio::test]
async fn wrong_client_secret_is_unauthorized() {
    let (fake, _, clock) = setup().await;
    let config = ClientConfig {
        client_secret: SecretString::new("wrong"),
        ..fake.client_config()
    };
    let client = Client::new(config, TokenCache::new(clock)).unwrap();

    assert_eq!(client.get_api_info().await.unwrap_err(), Error::Unauthorized);
    assert_eq!(fake.tokens_minted(), 0);
    assert_eq!(fake.calls(TOKEN_ENDPOINT), 1, "a refusal is not retried");
    assert_eq!(fake.calls("get_api_info"), 0);
}

#[tokio::test]
async fn forbidden_is_typed_and_not_retried() {
    let (fake, client, _) = setup().await;
    fake.push_fault("get_support_teams", Fault::Status(403));

    assert_eq!(client.get_support_teams().await.unwrap_err(), Error::Forbidden);
    assert_eq!(fake.calls("get_support_teams"), 1);
}

#[tokio::test]
async fn error_root_and_error_child_are_typed_api_errors_and_not_retried() {
    let (fake, client, _) = setup().await;
    fake.push_fault("get_logged_in_reps", Fault::ErrorRoot("Not allowed".into()));
    fake.push_fault("get_logged_in_reps", Fault::ErrorChild("Also not allowed".into()));

    let first = client.get_logged_in_reps().await.unwrap_err();
    let second = client.get_logged_in_reps().await.unwrap_err();

    assert_eq!(first, Error::Api("Not allowed".into()));
    assert_eq!(second, Error::Api("Also not allowed".into()));
    assert_eq!(fake.calls("get_logged_in_reps"), 2);
}

#[tokio::test]
async fn unparsable_answers_are_malformed() {
    let (fake, client, _) = setup().await;
    fake.push_fault("get_api_info", Fault::Body("<html><body>Sign in</body></html>".into()));
    fake.push_fault("get_api_info", Fault::Body("not xml".into()));

    assert!(matches!(client.get_api_info().await, Err(Error::Malformed(_))));
    assert!(matches!(client.get_api_info().await, Err(Error::Malformed(_))));
}

#[tokio::test]
async fn key_for_a_logged_out_rep_is_refused_and_nothing_is_issued() {
    let (fake, client, _) = setup().await;
    let request = SessionKeyRequest::new(QueueId::Rep("21".into()))
        .ttl_secs(1800)
        .external_key(ExternalKey::Ticket(1042));

    let err = client.generate_session_key(&request).await.unwrap_err();

    assert_eq!(
        err,
        Error::Api("Unable to generate a session key: representative 21 is not logged in.".into())
    );
    assert!(fake.issued_keys().is_empty());
}

#[tokio::test]
async fn keys_are_issued_for_logged_in_reps_and_teams_with_the_external_key() {
    let (fake, client, _) = setup().await;
    fake.log_in(FakeRep::new("21", "Sam", "Samuel Ortiz (Tier 1)"));
    fake.log_out("12");

    let reps = client.get_logged_in_reps().await.unwrap();
    let sam = super::find_logged_in_rep(&reps, "samuel ortiz (tier 1)").unwrap();
    let rep_key = client
        .generate_session_key(&SessionKeyRequest::new(QueueId::Rep(sam.id.clone())).external_key(ExternalKey::Chat(7)))
        .await
        .unwrap();
    let team_key = client
        .generate_session_key(
            &SessionKeyRequest::new(QueueId::Team("3".into()))
                .ttl_secs(1800)
                .external_key(ExternalKey::Ticket(1042)),
        )
        .await
        .unwrap();
    let alice = client
        .generate_session_key(&SessionKeyRequest::new(QueueId::Rep("12".into())))
        .await;

    assert!(matches!(alice, Err(Error::Api(_))), "Alice logged out");
    let issued = fake.issued_keys();
    assert_eq!(issued.len(), 2);
    assert_eq!(
        (issued[0].queue_id.as_str(), issued[0].external_key.as_deref()),
        ("rep:21", Some("C7"))
    );
    assert_eq!(
        (issued[1].queue_id.as_str(), issued[1].external_key.as_deref()),
        ("team:3", Some("T1042"))
    );
    assert_eq!(issued[1].ttl.as_deref(), Some("1800"));
    assert_eq!(rep_key.short_key, issued[0].short_key);
    assert_eq!(rep_key.short_key.len(), 7);
    assert!(team_key.key_url.as_deref().unwrap().starts_with(fake.base_url()));
    assert!(team_key.expires.is_some());
    let form = fake.last_form("generate_session_key").unwrap();
    assert!(form.contains(&("type".into(), "support".into())));
}

#[tokio::test]
async fn teams_are_fetched_with_members() {
    let (fake, client, _) = setup().await;

    let teams = client.get_support_teams().await.unwrap();

    assert_eq!(teams.len(), 2);
    assert_eq!(teams[0].members.len(), 2);
    assert_eq!(teams[0].members[1].names.public_display_name.as_deref(), Some("Sam"));
    let form = fake.last_form("get_support_teams").unwrap();
    assert!(form.contains(&("showmembers".into(), "1".into())));
}

#[tokio::test]
async fn incomplete_report_becomes_complete_on_a_later_fetch() {
    let (fake, client, _) = setup().await;
    fake.set_report_sequence(fixtures::LSID_T1042, fixtures::REPORT_INCOMPLETE, fixtures::REPORT, 1);
    let id = lsid(fixtures::LSID_T1042);

    let first = client.support_session_report(&id).await.unwrap();
    let second = client.support_session_report(&id).await.unwrap();

    assert!(!first.is_complete());
    assert!(second.is_complete());
    assert_eq!(second.external_key.as_deref(), Some("T1042"));
    assert_eq!(fake.report_fetches(fixtures::LSID_T1042), 2);
    let form = fake.last_form("SupportSession").unwrap();
    assert!(form.contains(&("lsid".into(), fixtures::LSID_T1042.into())));
}

#[tokio::test]
async fn unknown_session_is_an_api_error() {
    let (_fake, client, _) = setup().await;

    let err = client
        .support_session_report(&lsid(fixtures::LSID_UNLINKED))
        .await
        .unwrap_err();

    assert_eq!(err, Error::Api("No sessions matched your query.".into()));
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let (fake, client, _) = setup().await;
    fake.set_report(fixtures::LSID_UNLINKED, fixtures::REPORT_UNLINKED);
    fake.push_fault("SupportSession", Fault::Status(503));
    fake.push_fault("SupportSession", Fault::Status(500));

    let report = client
        .support_session_report(&lsid(fixtures::LSID_UNLINKED))
        .await
        .unwrap();

    assert_eq!(report.lsid, fixtures::LSID_UNLINKED);
    assert_eq!(fake.calls("SupportSession"), 3);
}

#[tokio::test]
async fn server_errors_beyond_two_retries_are_unavailable() {
    let (fake, client, _) = setup().await;
    for _ in 0..3 {
        fake.push_fault("get_api_info", Fault::Status(502));
    }
    fake.push_fault("get_api_info", Fault::Status(429));

    let err = client.get_api_info().await.unwrap_err();

    assert!(matches!(err, Error::Unavailable(ref m) if m.contains("502")), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(fake.calls("get_api_info"), 3);
}

#[tokio::test]
async fn without_retries_a_server_error_fails_at_once() {
    let (fake, _, clock) = setup().await;
    let config = ClientConfig {
        retry: RetryPolicy::none(),
        ..fake.client_config()
    };
    let client = Client::new(config, TokenCache::new(clock)).unwrap();
    fake.push_fault("get_api_info", Fault::Status(500));

    assert!(matches!(client.get_api_info().await, Err(Error::Unavailable(_))));
    assert_eq!(fake.calls("get_api_info"), 1);
}

#[tokio::test]
async fn token_endpoint_outage_is_retried() {
    let (fake, client, _) = setup().await;
    fake.push_fault(TOKEN_ENDPOINT, Fault::Status(503));

    client.get_api_info().await.unwrap();

    assert_eq!(fake.calls(TOKEN_ENDPOINT), 2);
    assert_eq!(fake.tokens_minted(), 1);
}

#[tokio::test]
async fn slow_answers_time_out_and_the_total_wait_is_bounded() {
    let (fake, _, clock) = setup().await;
    let config = ClientConfig {
        timeout: Duration::from_millis(150),
        ..fake.client_config()
    };
    let client = Client::new(config, TokenCache::new(clock)).unwrap();
    client.get_api_info().await.unwrap();
    for _ in 0..3 {
        fake.push_fault("get_logged_in_reps", Fault::Delay(Duration::from_secs(5)));
    }

    let started = Instant::now();
    let err = client.get_logged_in_reps().await.unwrap_err();

    assert!(
        matches!(err, Error::Unavailable(ref m) if m.contains("no answer within")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(fake.calls("get_logged_in_reps"), 3);
}

#[tokio::test]
async fn one_slow_answer_is_retried() {
    let (fake, _, clock) = setup().await;
    let config = ClientConfig {
        timeout: Duration::from_millis(150),
        ..fake.client_config()
    };
    let client = Client::new(config, TokenCache::new(clock)).unwrap();
    fake.push_fault("get_logged_in_reps", Fault::Delay(Duration::from_secs(5)));

    let reps = client.get_logged_in_reps().await.unwrap();

    assert_eq!(reps.len(), 2);
    assert_eq!(fake.calls("get_logged_in_reps"), 2);
}

#[tokio::test]
async fn unreachable_appliance_is_unavailable() {
    let (fake, _, clock) = setup().await;
    let base = fake.base_url().to_string();
    drop(fake);
    let config = ClientConfig {
        base_url: base,
        client_id: super::fake::CLIENT_ID.into(),
        client_secret: SecretString::new(super::fake::CLIENT_SECRET),
        timeout: Duration::from_millis(500),
        retry: RetryPolicy::immediate(1),
    };
    let client = Client::new(config, TokenCache::new(clock)).unwrap();

    assert!(matches!(client.get_api_info().await, Err(Error::Unavailable(_))));
}

#[tokio::test]
async fn configuration_check_reports_each_problem() {
    let (fake, client, clock) = setup().await;

    let ok = client.check_configuration().await;
    assert!(
        ok.ok && ok.token_ok && ok.command_full_access && ok.reporting_support,
        "{ok:?}"
    );
    assert_eq!(ok.api_version.as_deref(), Some("1.22.2"));

    fake.set_api_info(
        r#"<api_information><api_version>1.22.2</api_version><permissions>
        <permission name="perm_command" value="read_only"/><permission name="perm_reporting_support" value="0"/>
        </permissions></api_information>"#,
    );
    let weak = client.check_configuration().await;
    assert!(!weak.ok && weak.token_ok && weak.api_info_ok);
    assert_eq!(weak.problems.len(), 2, "{:?}", weak.problems);

    let bad = Client::new(
        ClientConfig {
            client_secret: SecretString::new("wrong"),
            ..fake.client_config()
        },
        TokenCache::new(clock),
    )
    .unwrap()
    .check_configuration()
    .await;
    assert!(!bad.ok && !bad.token_ok);
    assert_eq!(bad.problems.len(), 1);
    assert!(bad.problems[0].contains("401"), "{:?}", bad.problems);
}

#[tokio::test]
async fn client_refuses_bad_configuration() {
    let clock = Arc::new(ManualClock::new(t0()));
    let base = ClientConfig::new("https://support.example.com", "id", SecretString::new("secret"));
    for (config, why) in [
        (
            ClientConfig {
                base_url: "http://support.example.com".into(),
                ..base.clone()
            },
            "plain http",
        ),
        (
            ClientConfig {
                client_id: " ".into(),
                ..base.clone()
            },
            "blank id",
        ),
        (
            ClientConfig {
                client_secret: SecretString::new(""),
                ..base.clone()
            },
            "empty secret",
        ),
        (
            ClientConfig {
                timeout: Duration::ZERO,
                ..base.clone()
            },
            "zero timeout",
        ),
    ] {
        assert!(
            matches!(
                Client::new(config, TokenCache::new(clock.clone())),
                Err(Error::Invalid(_))
            ),
            "{why}"
        );
    }
    let client = Client::new(base, TokenCache::new(clock)).unwrap();
    assert_eq!(client.base_url(), "https://support.example.com");
    assert!(!format!("{client:?}").contains("secret\""), "no secret in Debug");
}

#[tokio::test]
async fn token_cache_can_be_seeded_and_cleared() {
    let (fake, client, clock) = setup().await;
    let cache = client_tokens(&client);
    assert!(cache.snapshot().await.is_none());
    client.get_api_info().await.unwrap();
    let (token, expires) = cache.snapshot().await.unwrap();
    assert_eq!(expires, clock.now() + chrono::Duration::seconds(3600));

    // Another process adopts the token: no new mint.
    let other_cache = TokenCache::new(clock.clone());
    other_cache
        .seed(
            super::TOKEN_VENDOR,
            fake.base_url(),
            super::fake::CLIENT_ID,
            token,
            expires,
        )
        .await;
    let other = Client::new(fake.client_config(), other_cache.clone()).unwrap();
    other.get_api_info().await.unwrap();
    assert_eq!(fake.tokens_minted(), 1);

    other_cache.clear().await;
    other.get_api_info().await.unwrap();
    assert_eq!(fake.tokens_minted(), 2);
}

#[tokio::test]
async fn the_fake_notices_requests_that_keep_the_connection_open() {
    let (fake, _, _) = setup().await;

    let plain = reqwest::Client::new()
        .post(format!("{}/api/command", fake.base_url()))
        .form(&[("action", "get_api_info")])
        .send()
        .await
        .unwrap();

    assert_eq!(plain.status(), 401, "no bearer token");
    assert_eq!(fake.calls_without_connection_close(), 1);
}
