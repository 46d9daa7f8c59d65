//! The soak's 30-second version in the test run: the same mixed traffic at 100 req/s
//! against an in-process deskbridge, then its queues drained; no error of any kind.

use std::sync::Arc;
use std::time::Duration;

use deskbridge_bench::soak::{self, Kind, SoakPlan};
use deskbridge_local::{LocalConfig, LocalServer};

const TOKEN: &str = "soak-smoke-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_seconds_of_mixed_traffic_without_an_error_and_the_queues_drained() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("deskbridge");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = LocalServer::build(
        listener,
        LocalConfig {
            data_dir: data_dir.clone(),
            api_token: Some(TOKEN.into()),
            public_url: None,
            allow_loopback_vendors: true,
        },
    )
    .await
    .expect("deskbridge builds");
    let base = format!("http://{}", server.addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let plan = SoakPlan::smoke();
    let client = deskbridge_bench::load::client();
    let setup = Arc::new(soak::configure(&client, &base, TOKEN, &plan).await.expect("configured"));
    let figures = soak::run(&plan, setup, std::process::id(), data_dir, Duration::from_secs(120))
        .await
        .expect("soak runs and the queues drain");
    figures.print();

    let expected = (plan.rate * plan.seconds).round() as usize;
    assert_eq!(figures.load.requests, expected);
    assert_eq!(
        (figures.load.non_2xx, figures.load.failed),
        (0, 0),
        "{:?}",
        figures.bad_statuses
    );
    for (kind, (sent, ok)) in &figures.by_kind {
        assert!(*sent > 0, "{kind:?} never sent");
        assert_eq!(sent, ok, "{kind:?}");
    }
    assert_eq!(figures.by_kind[&Kind::SessionEnd].0, figures.sessions_sent);
    assert_eq!(figures.dead_letters, 0);
    assert_eq!(
        figures.sessions_imported, figures.sessions_sent,
        "every session end imported onto its ticket once"
    );
    // RSS is the test process's here (client and server together): printed, not judged.
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
