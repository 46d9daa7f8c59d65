//! Issue 10's BeyondTrust promises end to end against the fake appliance on both stores:
//! incomplete reports retried on the 5 s, 15 s, 30 s … schedule (local worker on a manual
//! clock, SQS on moto), reports without chat URLs imported as possibly partial, and the
//! lost-end-event sweep (`POST /api/sync/beyondtrust`) importing each session once.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use deskbridge::beyondtrust::fake::{without_chat_urls, FakeBeyondTrust};
use deskbridge::domain::remote::PARTIAL_TRANSCRIPT_NOTE;
use deskbridge::ports::{Clock, QueueName};
use deskbridge::services::consumers::sqs_batch;
use deskbridge_local::worker::Worker;
use serde_json::json;

use crate::bt_e2e::{
    end_event, end_session, event_token, post_event, remote_actions, report, report_incomplete, sessions, setup_with,
    ticket, L1,
};
use crate::desk::{on_both_stores, Desk};

/// The fake appliance on the desk's manual clock.
async fn fake_on_clock(d: &Desk) -> FakeBeyondTrust {
    let clock: Arc<dyn Clock> = d.clock.clone();
    FakeBeyondTrust::start_with_clock(clock).await.1
}

/// The local worker's loop on the manual clock: drain every queue, then one second
/// passes; until ticket `t` has its remote-session action or `limit` has passed. Returns
/// the time that passed.
async fn run_worker_until_imported(d: &Desk, t: u64, limit: Duration) -> Duration {
    let worker = Worker::new(d.ctx.clone());
    let mut passed = Duration::ZERO;
    loop {
        worker.drain_once().await;
        if !remote_actions(d, t).await.is_empty() {
            return passed;
        }
        assert!(passed < limit, "not imported within {limit:?}");
        d.clock.advance(Duration::from_secs(1));
        passed += Duration::from_secs(1);
    }
}

async fn a_report_ready_a_second_after_the_first_read_lands_within_seven_seconds(d: Desk) {
    let fake = fake_on_clock(&d).await;
    let bt = setup_with(&d, fake, json!({})).await;
    let t = ticket(&d, &bt).await;
    let key = format!("T{t}");
    end_session(&d, L1).await;
    // The appliance writes the report a second after the end event goes out.
    bt.fake.set_report_ready_after(
        L1,
        report_incomplete(L1, &key),
        report(L1, &key),
        Duration::from_secs(1),
    );
    let passed = run_worker_until_imported(&d, t, Duration::from_secs(60)).await;
    let since_ready = passed - Duration::from_secs(1);
    assert!(
        since_ready < Duration::from_secs(7),
        "landed {since_ready:?} after the report was ready"
    );
    assert_eq!(
        bt.fake.report_fetches(L1),
        2,
        "one incomplete read, then the retry after 5 s"
    );
    let s = &sessions(&d, "").await[0];
    assert_eq!(s["possibly_partial"], false, "{s}");
}

/// The same promise on the wall clock: `deskbridge serve`'s own assembly and worker loop
/// (`Worker::run`, a drain a second), the fake appliance on the system clock. The time
/// from the end event to the transcript is printed as a figure (issue 10: under 7 s after
/// the report is ready); only landing at all, with one retry, is asserted.
#[tokio::test]
async fn on_the_wall_clock_the_local_worker_lands_a_report_ready_a_second_late() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = deskbridge_local::LocalServer::build(
        listener,
        deskbridge_local::LocalConfig {
            data_dir: dir.path().to_path_buf(),
            api_token: Some("local-token".into()),
            public_url: Some("https://desk.example.test".into()),
            allow_loopback_vendors: true,
        },
    )
    .await
    .unwrap();
    let d = Desk::over(&server.ctx);
    let (_, fake) = FakeBeyondTrust::start().await;
    let bt = setup_with(&d, fake, json!({})).await;
    let t = ticket(&d, &bt).await;
    let key = format!("T{t}");
    bt.fake.set_report_ready_after(
        L1,
        report_incomplete(L1, &key),
        report(L1, &key),
        Duration::from_secs(1),
    );
    let ended = std::time::Instant::now();
    end_session(&d, L1).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(Worker::new(server.ctx.clone()).run(stopped));
    while remote_actions(&d, t).await.is_empty() {
        assert!(ended.elapsed() < Duration::from_secs(60), "not imported within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let landed = ended.elapsed();
    stop.send(true).unwrap();
    worker.await.unwrap();
    assert_eq!(bt.fake.report_fetches(L1), 2, "one incomplete read, then the retry");
    println!(
        "wall clock: transcript on the ticket {:.2} s after the end event, {:.2} s after the report was ready",
        landed.as_secs_f64(),
        landed.as_secs_f64() - 1.0
    );
}

async fn a_report_without_chat_urls_is_imported_within_two_minutes_marked_possibly_partial(d: Desk) {
    let fake = fake_on_clock(&d).await;
    let bt = setup_with(&d, fake, json!({})).await;
    let t = ticket(&d, &bt).await;
    // An abnormal end: the report has its end time but never gets chat URLs.
    bt.fake.set_report(L1, without_chat_urls(&report(L1, &format!("T{t}"))));
    end_session(&d, L1).await;
    let passed = run_worker_until_imported(&d, t, Duration::from_secs(300)).await;
    assert!(
        (Duration::from_secs(100)..=Duration::from_secs(120)).contains(&passed),
        "imported after {passed:?}; the chat URLs are waited for about two minutes"
    );
    assert_eq!(bt.fake.report_fetches(L1), 5, "reads at 0, 5, 20, 50, 110 s");
    let actions = remote_actions(&d, t).await;
    assert_eq!(actions.len(), 1);
    let note = actions[0]["note"].as_str().unwrap();
    assert!(note.starts_with(PARTIAL_TRANSCRIPT_NOTE), "{note}");
    assert!(
        note.contains("Chat transcript"),
        "what the report holds is imported: {note}"
    );
    let s = &sessions(&d, "").await[0];
    assert_eq!(s["possibly_partial"], true, "{s}");
    let log = d.request_log("&source=session-import&outcome=imported").await;
    assert!(
        log[0]["reason"].as_str().unwrap().contains("possibly partial"),
        "{log:?}"
    );
    assert!(d
        .ctx
        .queue
        .dead_letters(QueueName::SessionImport)
        .await
        .unwrap()
        .is_empty());
}

async fn a_report_that_never_ends_is_dead_lettered_after_the_schedule(d: Desk) {
    let fake = fake_on_clock(&d).await;
    let bt = setup_with(&d, fake, json!({})).await;
    let t = ticket(&d, &bt).await;
    bt.fake.set_report(L1, report_incomplete(L1, &format!("T{t}")));
    end_session(&d, L1).await;
    let worker = Worker::new(d.ctx.clone());
    for _ in 0..540 {
        worker.drain_once().await;
        d.clock.advance(Duration::from_secs(1));
    }
    worker.drain_once().await;
    // 0, 5, 20, 50, 110, 230, 530 s: seven reads, then at once the dead-letter queue.
    assert_eq!(bt.fake.report_fetches(L1), 7);
    let dead = d.ctx.queue.dead_letters(QueueName::SessionImport).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(remote_actions(&d, t).await.is_empty());
}

/// `report` as if the session had ended at `at`.
fn ended_at(report: String, at: chrono::DateTime<chrono::Utc>) -> String {
    report.replace(
        r#"<end_time timestamp="1795425312">"#,
        &format!(r#"<end_time timestamp="{}">"#, at.timestamp()),
    )
}

/// `POST /api/sync/beyondtrust` end to end: the 202, the sweep run by the session-import
/// consumer, then the run as `GET /api/sync/beyondtrust/runs/{id}` shows it.
async fn sweep_now(d: &Desk) -> serde_json::Value {
    let (s, queued) = d.post("/api/sync/beyondtrust", json!({})).await;
    assert_eq!(s, 202, "{queued}");
    let run_id = queued["run_id"].as_u64().unwrap();
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0), "the sweep ran");
    let (s, run) = d.get(&format!("/api/sync/beyondtrust/runs/{run_id}")).await;
    assert_eq!(s, 200, "{run}");
    run
}

async fn a_session_whose_end_event_never_came_is_imported_by_the_sweep_exactly_once(d: Desk) {
    let bt = setup_with(&d, FakeBeyondTrust::start().await.1, json!({})).await;
    let t = ticket(&d, &bt).await;
    let ended = d.clock.now() - chrono::Duration::minutes(10);
    bt.fake.set_report(L1, ended_at(report(L1, &format!("T{t}")), ended));
    // No end event was ever sent.
    let run = sweep_now(&d).await;
    assert_eq!(
        (&run["state"], &run["sessions_listed"], &run["imports_queued"]),
        (&json!("done"), &json!(1), &json!(1)),
        "{run}"
    );
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0));
    assert_eq!(remote_actions(&d, t).await.len(), 1);
    // The next sweep sees it again and queues nothing.
    let run = sweep_now(&d).await;
    assert_eq!(
        (&run["imports_queued"], &run["sessions_known"]),
        (&json!(null), &json!(1)),
        "{run}"
    );
    assert_eq!(d.drain(QueueName::SessionImport).await, (0, 0));
    // The end event arriving late is a duplicate.
    let token = event_token(&d).await;
    let (s, v) = post_event(&d, &token, end_event(L1)).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("duplicate")), "{v}");
    assert_eq!(d.drain(QueueName::SessionImport).await, (0, 0));
    assert_eq!(remote_actions(&d, t).await.len(), 1);
    assert_eq!(sessions(&d, "").await.len(), 1);
    let (_, runs) = d.get("/api/sync/beyondtrust/runs").await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 2);
    let (s, _) = d.get("/api/sync/datto/runs/1").await;
    assert_eq!(s, 404, "sweeps are not Datto runs");
}

async fn a_late_end_event_racing_the_sweeps_import_still_makes_one_action(d: Desk) {
    let bt = setup_with(&d, FakeBeyondTrust::start().await.1, json!({})).await;
    let t = ticket(&d, &bt).await;
    let ended = d.clock.now() - chrono::Duration::minutes(3);
    bt.fake.set_report(L1, ended_at(report(L1, &format!("T{t}")), ended));
    assert_eq!(sweep_now(&d).await["imports_queued"], 1);
    // The end event comes after all, before the sweep's import ran.
    let token = event_token(&d).await;
    let (s, v) = post_event(&d, &token, end_event(L1)).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("enqueued")), "{v}");
    for _ in 0..4 {
        if d.drain(QueueName::SessionImport).await == (0, 0) {
            break;
        }
    }
    assert_eq!(remote_actions(&d, t).await.len(), 1, "imported exactly once");
    assert_eq!(sessions(&d, "").await.len(), 1);
}

async fn the_sweep_needs_beyondtrust_configured(d: Desk) {
    let (s, v) = d.post("/api/sync/beyondtrust", json!({})).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("BEYONDTRUST_NOT_CONFIGURED")),
        "{v}"
    );
}

on_both_stores!(
    a_session_whose_end_event_never_came_is_imported_by_the_sweep_exactly_once,
    a_late_end_event_racing_the_sweeps_import_still_makes_one_action,
    the_sweep_needs_beyondtrust_configured,
    a_report_ready_a_second_after_the_first_read_lands_within_seven_seconds,
    a_report_without_chat_urls_is_imported_within_two_minutes_marked_possibly_partial,
    a_report_that_never_ends_is_dead_lettered_after_the_schedule,
);

/// On SQS the consumer itself schedules the retry: the failing message's visibility is
/// changed to 5 s on its receipt handle (the queue's own timeout is 150 s), so it is back
/// within seconds, and its receive count picks the next wait (moto).
#[tokio::test]
async fn on_sqs_a_failing_import_is_visible_again_after_five_seconds_not_the_queue_timeout() {
    let Some(endpoint) = deskbridge_tests::emulators::moto() else {
        return;
    };
    let client = aws_sdk_sqs::Client::new(&deskbridge_tests::emulators::aws_config(&endpoint).await);
    let prefix = format!("{}-", deskbridge_tests::emulators::unique("deskbridge"));
    let queues = deskbridge::adapters::sqs::create_queues(&client, &prefix, Duration::from_secs(150))
        .await
        .unwrap();
    let sqs: Arc<dyn deskbridge::ports::Queue> = Arc::new(deskbridge::adapters::sqs::SqsQueue::new(client, queues));
    let clock = Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
    let (records, _dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let mut d = crate::desk::desk_on(records, clock);
    let fake = FakeBeyondTrust::start().await.1;
    let bt = setup_with(&d, fake, json!({})).await;
    let t = ticket(&d, &bt).await;
    bt.fake.set_report(L1, report_incomplete(L1, &format!("T{t}")));
    d.ctx.queue = sqs.clone();
    end_session(&d, L1).await;
    let received = |n: u32| {
        let sqs = sqs.clone();
        async move {
            let started = std::time::Instant::now();
            loop {
                let msgs = sqs.receive(QueueName::SessionImport, 10).await.unwrap();
                if let Some(m) = msgs.into_iter().next() {
                    assert_eq!(m.receive_count, n);
                    return (m, started.elapsed());
                }
                assert!(started.elapsed() < Duration::from_secs(30), "receive {n} never came");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let batch = |m: &deskbridge::ports::ReceivedMessage| -> SqsEvent {
        serde_json::from_value(json!({"Records": [{
            "messageId": m.id, "receiptHandle": m.receipt, "body": m.body, "eventSource": "aws:sqs",
            "attributes": {"ApproximateReceiveCount": m.receive_count.to_string()}
        }]}))
        .unwrap()
    };
    let (first, _) = received(1).await;
    let response = sqs_batch(&d.ctx, QueueName::SessionImport, batch(&first)).await;
    assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
    let (second, waited) = received(2).await;
    assert!(
        (Duration::from_secs(3)..Duration::from_secs(20)).contains(&waited),
        "back after {waited:?}: the 5 s of the schedule, not the queue's 150 s"
    );
    // With the report in place the second receive imports it.
    bt.fake.set_report(L1, report(L1, &format!("T{t}")));
    let response = sqs_batch(&d.ctx, QueueName::SessionImport, batch(&second)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(remote_actions(&d, t).await.len(), 1);
}

/// A mailer that fails while `failing` is set, else hands the mail to the desk's outbox.
struct FlakyMailer {
    failing: std::sync::atomic::AtomicBool,
    outbox: Arc<deskbridge::adapters::outbox::OutboxMailer>,
}

#[async_trait::async_trait]
impl deskbridge::ports::Mailer for FlakyMailer {
    async fn send(&self, mail: &deskbridge::ports::OutgoingMail) -> Result<String, deskbridge::ports::MailError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(deskbridge::ports::MailError::Unavailable(
                "SES is throttling (test)".into(),
            ));
        }
        self.outbox.send(mail).await
    }
}

async fn an_invite_whose_mail_fails_keeps_its_key_says_so_and_can_be_resent(mut d: Desk) {
    let bt = setup_with(&d, FakeBeyondTrust::start().await.1, json!({})).await;
    let t = ticket(&d, &bt).await;
    let mailer = Arc::new(FlakyMailer {
        failing: true.into(),
        outbox: d.outbox.clone(),
    });
    d.ctx.mailer = mailer.clone();
    let (s, inv) = crate::bt_e2e::call_as(
        &d,
        "POST",
        &format!("/api/tickets/{t}/remote-invites"),
        Some(bt.alice),
        Some(json!({"target": format!("agent:{}", bt.alice), "via": "quick"})),
    )
    .await;
    // The key exists: the agent's screen gets the code and the link to read out, and a
    // plain flag that the mail did not go.
    assert_eq!(s, 201, "{inv}");
    assert!(inv["short_key"].is_string() && inv["key_url"].is_string(), "{inv}");
    assert_eq!(inv["email_failed"]["to"], "jane@contoso.example", "{inv}");
    assert!(inv["email_failed"]["reason"].as_str().unwrap().contains("throttling"));
    assert!(inv["email_to"].is_null());
    assert_eq!(bt.fake.issued_keys().len(), 1);
    assert!(d.outbox.list().is_empty());
    let (_, ticket) = d.get(&format!("/api/tickets/{t}")).await;
    let notes: Vec<&str> = ticket["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["note"].as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("but the e-mail to jane@contoso.example failed")),
        "{notes:?}"
    );
    // Resent once the mail service is back: the same key, no new one.
    mailer.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let resend = format!("/api/remote-invites/{}/resend", inv["id"]);
    let (s, again) = crate::bt_e2e::call_as(&d, "POST", &resend, Some(bt.alice), None).await;
    assert_eq!(s, 200, "{again}");
    assert!(again["email_failed"].is_null(), "{again}");
    assert_eq!(again["email_to"], "jane@contoso.example");
    assert_eq!(bt.fake.issued_keys().len(), 1, "no second key");
    let mails = d.outbox.list();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].1.text.contains(inv["short_key"].as_str().unwrap()));
    let (_, ticket) = d.get(&format!("/api/tickets/{t}")).await;
    assert!(ticket["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["kind"] == "email" && a["note"].as_str().unwrap().contains("e-mailed again")));
}

on_both_stores!(an_invite_whose_mail_fails_keeps_its_key_says_so_and_can_be_resent);
