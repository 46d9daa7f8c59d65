//! Ticket-close propagation through the real queue: an agent's close resolves the Datto
//! alert exactly once; Datto-origin closes never call back; failures retry, poison dies.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use deskbridge::jobs::close_propagation::{propagate_close, sweep_pending_closes};

use crate::scripted_datto::{ScriptedConnect, ScriptedDatto};
use deskbridge::jobs::JobError;
use deskbridge::ports::{QueueName, MAX_RECEIVES};
use serde_json::json;

use crate::desk::{fixture_json, on_both_stores, Desk, NowUtc, UID};

/// Hand `datto` to the desk as its Datto API, as the connector would.
fn use_datto(d: &mut Desk, datto: &Arc<ScriptedDatto>) {
    d.ctx.datto = Arc::new(ScriptedConnect(datto.clone()));
}

async fn raise(d: &Desk) -> u64 {
    d.configure_datto().await;
    let (_, r) = d.webhook(&fixture_json("webhook-raised.json")).await;
    r["ticket_id"].as_u64().unwrap()
}

async fn an_agent_close_resolves_the_alert_in_datto_exactly_once(mut d: Desk) {
    let tid = raise(&d).await;
    let datto = ScriptedDatto::with_open(UID);
    use_datto(&mut d, &datto);
    let (s, _) = d
        .post(&format!("/api/tickets/{tid}/close"), json!({"note": "Fixed"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(d.drain(QueueName::TicketClosed).await, (1, 0));
    assert_eq!(datto.resolves.load(Ordering::SeqCst), 1);
    let (_, alert) = d.get(&format!("/api/alerts/{UID}")).await;
    assert_eq!(
        (alert["resolve_propagated"].as_bool(), alert["state"].as_str()),
        (Some(true), Some("resolved"))
    );
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert!(t["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["note"].as_str().unwrap().contains("resolved in Datto RMM")));

    // A redelivered message, the sweep, and Datto's resolved webhook change nothing.
    let body = json!({"ticket_id": tid, "alert_uid": UID}).to_string();
    propagate_close(&d.ctx.store, datto.as_ref(), &body).await.unwrap();
    d.clock.advance(std::time::Duration::from_secs(600));
    assert_eq!(
        sweep_pending_closes(&d.ctx.store, d.ctx.queue.as_ref(), d.clock.now_utc())
            .await
            .unwrap(),
        0
    );
    let (_, r) = d.webhook(&fixture_json("webhook-resolved.json")).await;
    assert_eq!(r["result"], "duplicate");
    assert_eq!(datto.resolves.load(Ordering::SeqCst), 1, "exactly one resolve call");
}

async fn a_datto_origin_close_never_calls_datto(mut d: Desk) {
    raise(&d).await;
    let datto = ScriptedDatto::with_open(UID);
    use_datto(&mut d, &datto);
    d.webhook(&fixture_json("webhook-resolved.json")).await;
    assert_eq!(
        d.drain(QueueName::TicketClosed).await,
        (0, 0),
        "no ticket-closed message for a Datto close"
    );
    d.clock.advance(std::time::Duration::from_secs(600));
    assert_eq!(
        sweep_pending_closes(&d.ctx.store, d.ctx.queue.as_ref(), d.clock.now_utc())
            .await
            .unwrap(),
        0
    );
    assert_eq!(datto.resolves.load(Ordering::SeqCst), 0);
}

async fn an_alert_datto_does_not_know_is_done_with_a_note(mut d: Desk) {
    let tid = raise(&d).await;
    let datto = Arc::new(ScriptedDatto::default());
    use_datto(&mut d, &datto);
    d.post(&format!("/api/tickets/{tid}/close"), json!({})).await;
    assert_eq!(d.drain(QueueName::TicketClosed).await, (1, 0));
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert!(t["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["note"].as_str().unwrap().contains("does not know alert")));
    assert!(d.ctx.store.pending_close(tid).await.unwrap().is_none());
}

async fn a_throttled_datto_is_retried_and_the_sweep_resends_lost_messages(mut d: Desk) {
    let tid = raise(&d).await;
    let datto = ScriptedDatto::with_open(UID);
    use_datto(&mut d, &datto);
    datto.fail_next.store(1, Ordering::SeqCst);
    d.post(&format!("/api/tickets/{tid}/close"), json!({})).await;
    assert_eq!(d.drain(QueueName::TicketClosed).await, (1, 1), "429 → item failure");
    assert!(d.ctx.store.pending_close(tid).await.unwrap().is_some());
    assert_eq!(
        d.drain(QueueName::TicketClosed).await,
        (1, 0),
        "the released message succeeds"
    );
    assert_eq!(datto.resolves.load(Ordering::SeqCst), 1);

    // A close whose message never reached the queue: the sweep resends it after 2 minutes.
    let mut other = fixture_json("webhook-raised.json");
    other["alert_uid"] = json!("3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28");
    let (_, r) = d.webhook(&other).await;
    let tid2 = r["ticket_id"].as_u64().unwrap();
    datto.alerts.lock().unwrap().insert(
        "3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28".into(),
        (false, Default::default()),
    );
    d.ctx.store.close_ticket_by_agent(tid2, "", None).await.unwrap();
    let now = d.clock.now_utc();
    assert_eq!(
        sweep_pending_closes(&d.ctx.store, d.ctx.queue.as_ref(), now)
            .await
            .unwrap(),
        0,
        "not yet due"
    );
    d.clock.advance(std::time::Duration::from_secs(121));
    assert_eq!(
        sweep_pending_closes(&d.ctx.store, d.ctx.queue.as_ref(), d.clock.now_utc())
            .await
            .unwrap(),
        1
    );
    assert_eq!(d.drain(QueueName::TicketClosed).await, (1, 0));
    assert_eq!(datto.resolves.load(Ordering::SeqCst), 2);
}

async fn a_poison_message_reaches_the_dead_letters_and_can_be_replayed(mut d: Desk) {
    let datto = ScriptedDatto::with_open(UID);
    use_datto(&mut d, &datto);
    d.ctx
        .queue
        .send(QueueName::TicketClosed, "this is not json")
        .await
        .unwrap();
    // A body that can never succeed is dead-lettered on its first failure, without
    // burning the MAX_RECEIVES retries.
    assert_eq!(d.drain(QueueName::TicketClosed).await, (1, 1));
    assert_eq!(
        d.drain(QueueName::TicketClosed).await,
        (0, 0),
        "moved to the dead letters at once"
    );
    let (s, dl) = d.get("/api/dead-letters").await;
    assert_eq!(s, 200);
    let items = dl["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    const { assert!(MAX_RECEIVES > 1) };
    assert_eq!(items[0]["receive_count"], 1, "{dl}");
    assert_eq!(items[0]["body"], "this is not json");
    assert_eq!(items[0]["queue"], "ticket-closed");
    let error = items[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("not a ticket-closed message"),
        "the dead letter says why: {dl}"
    );
    let id = items[0]["id"].as_str().unwrap().to_string();
    let (s, _) = d.post(&format!("/api/dead-letters/{id}/replay"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(d.get("/api/dead-letters").await.1["items"].as_array().unwrap().len(), 0);
    let msgs = d.ctx.queue.receive(QueueName::TicketClosed, 10).await.unwrap();
    assert_eq!(
        (msgs.len(), msgs[0].body.as_str(), msgs[0].receive_count),
        (1, "this is not json", 1)
    );
    assert_eq!(d.post("/api/dead-letters/nope/replay", json!({})).await.0, 404);
    let r = propagate_close(&d.ctx.store, datto.as_ref(), "{\"ticket_id\": 1}").await;
    assert!(matches!(r, Err(JobError::Permanent(_))));
}

/// A close reopened before its message is handled tells Datto nothing; the next close of
/// the reopened ticket is told, once.
async fn a_close_after_a_reopen_still_reaches_datto(mut d: Desk) {
    let tid = raise(&d).await;
    let datto = ScriptedDatto::with_open(UID);
    use_datto(&mut d, &datto);
    let close = format!("/api/tickets/{tid}/close");
    assert_eq!(d.post(&close, json!({})).await.0, 200);
    assert_eq!(d.post(&format!("/api/tickets/{tid}/reopen"), json!({})).await.0, 200);
    assert_eq!(d.drain(QueueName::TicketClosed).await, (1, 0));
    assert_eq!(datto.resolves.load(Ordering::SeqCst), 0, "reopened: nothing to tell");
    assert_eq!(d.post(&close, json!({})).await.0, 200);
    assert_eq!(
        d.drain(QueueName::TicketClosed).await,
        (1, 0),
        "the second close is queued"
    );
    assert_eq!(datto.resolves.load(Ordering::SeqCst), 1);
    let (_, alert) = d.get(&format!("/api/alerts/{UID}")).await;
    assert_eq!(alert["resolve_propagated"], true);
}

/// A message that fails every receive (Datto throttling for ever) is dead-lettered after
/// its last receive with the last failure's text, and replays clean once Datto answers.
async fn a_message_failing_every_receive_is_dead_lettered_with_its_last_error(mut d: Desk) {
    let tid = raise(&d).await;
    let datto = ScriptedDatto::with_open(UID);
    use_datto(&mut d, &datto);
    datto.fail_next.store(1_000, Ordering::SeqCst);
    assert_eq!(d.post(&format!("/api/tickets/{tid}/close"), json!({})).await.0, 200);
    for n in 1..=MAX_RECEIVES {
        assert_eq!(d.drain(QueueName::TicketClosed).await, (1, 1), "receive {n} fails");
        let (_, dl) = d.get("/api/dead-letters").await;
        let dead = dl["items"].as_array().unwrap().len();
        assert_eq!(
            dead,
            usize::from(n == MAX_RECEIVES),
            "dead only after the last receive: {dl}"
        );
    }
    assert_eq!(
        d.drain(QueueName::TicketClosed).await,
        (0, 0),
        "nothing left to receive"
    );
    let (_, dl) = d.get("/api/dead-letters").await;
    let letter = &dl["items"][0];
    assert_eq!(letter["receive_count"], MAX_RECEIVES, "{dl}");
    assert_eq!(
        letter["error"],
        format!("gave up after {MAX_RECEIVES} receives; the last failed with: retryable failure: Datto RMM: 429 Too Many Requests"),
        "{dl}"
    );
    datto.fail_next.store(0, Ordering::SeqCst);
    let id = letter["id"].as_str().unwrap();
    assert_eq!(
        d.post(&format!("/api/dead-letters/{id}/replay"), json!({})).await.0,
        200
    );
    assert_eq!(d.drain(QueueName::TicketClosed).await, (1, 0));
    assert_eq!(datto.resolves.load(Ordering::SeqCst), 1);
}

on_both_stores!(
    a_close_after_a_reopen_still_reaches_datto,
    an_agent_close_resolves_the_alert_in_datto_exactly_once,
    a_datto_origin_close_never_calls_datto,
    an_alert_datto_does_not_know_is_done_with_a_note,
    a_throttled_datto_is_retried_and_the_sweep_resends_lost_messages,
    a_poison_message_reaches_the_dead_letters_and_can_be_replayed,
    a_message_failing_every_receive_is_dead_lettered_with_its_last_error,
);

/// The same poison scenario with the desk's queue on SQS in moto: there SQS's own redrive
/// policy (maxReceiveCount 5, as `create_queues` and template.yaml set it) moves the message.
#[tokio::test]
async fn a_poison_message_reaches_the_dead_letters_and_can_be_replayed_on_sqs() {
    use deskbridge::adapters::sqs::{create_queues, SqsQueue};
    use deskbridge_tests::emulators;
    let Some(endpoint) = emulators::moto() else { return };
    let client = aws_sdk_sqs::Client::new(&emulators::aws_config(&endpoint).await);
    let prefix = format!("{}-", emulators::unique("deskbridge"));
    let queues = create_queues(&client, &prefix, std::time::Duration::from_secs(30))
        .await
        .expect("create queues");
    let clock = Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
    let (records, _dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let mut d = crate::desk::desk_on(records, clock);
    d.ctx.queue = Arc::new(SqsQueue::new(client, queues));
    a_poison_message_reaches_the_dead_letters_and_can_be_replayed(d).await;
}
