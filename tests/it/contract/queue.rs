//! The `Queue` contract (see the doc comments in `deskbridge::ports`). Every case takes a
//! queue set of its own: all three `QueueName`s and their dead-letter queues must start
//! empty and be used by no one else during the case. No case waits for a visibility
//! timeout: a message is made visible again with `release(.., 0)`. Cases do not assume
//! that one `receive` returns every visible message (SQS may return fewer), nor any order
//! between messages; order is checked in the SQLite-only cases.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use deskbridge::ports::{Queue, QueueError, QueueName, ReceivedMessage, MAX_RECEIVES};
use deskbridge_tests::emulators::unique;

const A: QueueName = QueueName::TicketClosed;
const B: QueueName = QueueName::AlertEnrich;

/// Receive from `queue` until `want` messages came back or a receive returns nothing.
async fn receive_up_to(queue: &dyn Queue, name: QueueName, want: usize) -> Vec<ReceivedMessage> {
    let mut got = Vec::new();
    for _ in 0..want + 5 {
        if got.len() >= want {
            break;
        }
        let batch = queue.receive(name, (want - got.len()).min(10)).await.expect("receive");
        assert!(
            batch.len() <= (want - got.len()).min(10),
            "receive returned more than max"
        );
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    got
}

/// Receive exactly one message and return it; fails if none or several come back.
async fn receive_one(queue: &dyn Queue, name: QueueName) -> ReceivedMessage {
    let mut got = receive_up_to(queue, name, 1).await;
    assert_eq!(got.len(), 1, "expected one message on {name}, got {got:?}");
    got.remove(0)
}

async fn assert_nothing_to_receive(queue: &dyn Queue, name: QueueName) {
    let got = queue.receive(name, 10).await.expect("receive");
    assert!(got.is_empty(), "expected nothing visible on {name}, got {got:?}");
}

/// A sent message is received with its id, body and a receive count of 1, and is gone for
/// good once acked.
pub async fn sent_message_is_received_once_and_gone_after_ack(queue: &dyn Queue) {
    let body = format!(r#"{{"ticket_id": 7, "tag": "{}"}}"#, unique("body"));
    let id = queue.send(A, &body).await.expect("send");
    let m = receive_one(queue, A).await;
    assert_eq!(
        (m.id.as_str(), m.body.as_str(), m.receive_count),
        (id.as_str(), body.as_str(), 1)
    );
    queue.ack(A, &m.receipt).await.expect("ack");

    // Even made visible on purpose, an acked message does not come back.
    let _ = queue.release(A, &m.receipt, Duration::ZERO).await;
    assert_nothing_to_receive(queue, A).await;
    assert!(queue.dead_letters(A).await.expect("dead letters").is_empty());
}

/// While a message is received and neither acked nor released, no other receive gets it;
/// other messages are still handed out.
pub async fn a_received_message_is_invisible_to_other_receives(queue: &dyn Queue) {
    let first = queue.send(A, "first").await.expect("send");
    let m = receive_one(queue, A).await;
    assert_eq!(m.id, first);
    assert_nothing_to_receive(queue, A).await;

    let second = queue.send(A, "second").await.expect("send");
    let n = receive_one(queue, A).await;
    assert_eq!(n.id, second, "the in-flight message was handed out twice");
    assert_nothing_to_receive(queue, A).await;
    queue.ack(A, &m.receipt).await.expect("ack");
    queue.ack(A, &n.receipt).await.expect("ack");
}

/// `receive(max)` hands out at most `max` messages; receiving on collects each sent
/// message exactly once.
pub async fn receive_hands_out_at_most_max_and_each_message_once(queue: &dyn Queue) {
    let mut sent = BTreeMap::new();
    for i in 0..7 {
        let body = format!("m{i}");
        sent.insert(queue.send(A, &body).await.expect("send"), body);
    }
    let first = queue.receive(A, 3).await.expect("receive");
    assert!(!first.is_empty() && first.len() <= 3, "receive(3) gave {}", first.len());
    let mut got = first;
    got.extend(receive_up_to(queue, A, 7 - got.len()).await);
    let received: BTreeMap<String, String> = got.iter().map(|m| (m.id.clone(), m.body.clone())).collect();
    assert_eq!(received.len(), got.len(), "a message was handed out twice");
    assert_eq!(received, sent);
    assert_nothing_to_receive(queue, A).await;
    for m in got {
        queue.ack(A, &m.receipt).await.expect("ack");
    }
}

/// `release` with zero delay makes the message visible at once; the next receive gets it
/// with the receive count one higher.
pub async fn release_now_redelivers_with_a_higher_receive_count(queue: &dyn Queue) {
    let id = queue.send(A, "retry me").await.expect("send");
    let m1 = receive_one(queue, A).await;
    queue.release(A, &m1.receipt, Duration::ZERO).await.expect("release");
    let m2 = receive_one(queue, A).await;
    assert_eq!((m2.id.as_str(), m2.body.as_str()), (id.as_str(), "retry me"));
    assert_eq!((m1.receive_count, m2.receive_count), (1, 2));
    queue.release(A, &m2.receipt, Duration::ZERO).await.expect("release");
    let m3 = receive_one(queue, A).await;
    assert_eq!(m3.receive_count, 3);
    queue.ack(A, &m3.receipt).await.expect("ack with the latest receipt");
    assert_nothing_to_receive(queue, A).await;
}

/// A message received `MAX_RECEIVES` times without an ack is not handed out again: the
/// next receive moves it to the dead letters, listed with its id and body.
pub async fn a_message_received_max_times_moves_to_the_dead_letters(queue: &dyn Queue) {
    let body = format!("poison {}", unique("body"));
    let id = queue.send(A, &body).await.expect("send");
    for expected in 1..=MAX_RECEIVES {
        let m = receive_one(queue, A).await;
        assert_eq!((m.id.as_str(), m.receive_count), (id.as_str(), expected));
        queue.release(A, &m.receipt, Duration::ZERO).await.expect("release");
    }
    assert_nothing_to_receive(queue, A).await;

    let dead = queue.dead_letters(A).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0].id.as_str(), dead[0].body.as_str()),
        (id.as_str(), body.as_str())
    );
    assert_eq!(dead[0].queue, A);
    assert!(dead[0].receive_count >= MAX_RECEIVES, "{dead:?}");
    // Listing does not consume.
    assert_eq!(queue.dead_letters(A).await.expect("dead letters").len(), 1);
    assert_nothing_to_receive(queue, A).await;
}

/// `dead_letter` on its first delivery moves a message to the dead letters at once (its
/// other receives are not used up); it can be replayed like any dead letter, and its
/// receipt is spent afterwards.
pub async fn a_dead_lettered_message_is_dead_at_once_and_can_be_replayed(queue: &dyn Queue) {
    let body = format!("never succeeds {}", unique("body"));
    let id = queue.send(A, &body).await.expect("send");
    let other = queue.send(A, "stays").await.expect("send");
    let mut got = receive_up_to(queue, A, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    got.sort_by_key(|m| m.id != id);
    let (m, keep) = (&got[0], &got[1]);
    assert_eq!((m.id.as_str(), m.receive_count), (id.as_str(), 1));
    // The failure text is kept (cut to its limit at a character boundary).
    // "é" (two bytes) straddles the limit, so the cut falls one byte short of it.
    let prefix = "not a ticket-closed message: ";
    let fill = "x".repeat(deskbridge::ports::DEAD_LETTER_ERROR_MAX - 1 - prefix.len());
    let error = format!("{prefix}{fill}é and more");
    queue
        .dead_letter(A, &m.receipt, &m.body, &error)
        .await
        .expect("dead letter");
    queue.release(A, &keep.receipt, Duration::ZERO).await.expect("release");

    let back = receive_one(queue, A).await;
    assert_eq!(back.id, other, "only the other message is still on the queue");
    queue.ack(A, &back.receipt).await.expect("ack");
    assert_nothing_to_receive(queue, A).await;
    let dead = queue.dead_letters(A).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].body.as_str(), dead[0].queue), (body.as_str(), A));
    let kept = dead[0].error.as_deref().expect("the failure text is kept");
    assert_eq!(
        kept,
        &error[..deskbridge::ports::DEAD_LETTER_ERROR_MAX - 1],
        "cut before the 'é'"
    );
    assert!(
        dead[0].receive_count < MAX_RECEIVES,
        "dead before its receives ran out: {dead:?}"
    );
    assert!(queue.dead_letters(B).await.expect("dead letters").is_empty());

    queue.replay(A, &dead[0].id).await.expect("replay");
    let m = receive_one(queue, A).await;
    assert_eq!((m.body.as_str(), m.receive_count), (body.as_str(), 1));
    queue.ack(A, &m.receipt).await.expect("ack");
    assert!(queue.dead_letters(A).await.expect("dead letters").is_empty());
}

/// A replayed dead letter is back on its queue with a fresh receive count, can be received
/// and acked, and is no longer listed as dead.
pub async fn a_replayed_dead_letter_can_be_received_and_acked(queue: &dyn Queue) {
    let body = format!("replay {}", unique("body"));
    queue.send(A, &body).await.expect("send");
    for _ in 0..MAX_RECEIVES {
        let m = receive_one(queue, A).await;
        queue.release(A, &m.receipt, Duration::ZERO).await.expect("release");
    }
    assert_nothing_to_receive(queue, A).await;
    let dead = queue.dead_letters(A).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");

    queue.replay(A, &dead[0].id).await.expect("replay");
    assert!(queue.dead_letters(A).await.expect("dead letters").is_empty());
    let m = receive_one(queue, A).await;
    assert_eq!((m.body.as_str(), m.receive_count), (body.as_str(), 1));
    queue.ack(A, &m.receipt).await.expect("ack");
    assert_nothing_to_receive(queue, A).await;
    assert!(queue.dead_letters(A).await.expect("dead letters").is_empty());
}

/// Replay is not a one-off: a replayed poison message that keeps failing is handed out
/// exactly `MAX_RECEIVES` times again (counting from 1 afresh) and is then a dead letter
/// again, with the same id and body, replayable once more.
pub async fn a_replayed_poison_message_dies_again_after_exactly_max_receives(queue: &dyn Queue) {
    let body = format!("poison twice {}", unique("body"));
    // SQS gives a replayed message a new id; within one round the id stays.
    let mut id = Some(queue.send(A, &body).await.expect("send"));
    let mut handed_out = 0;
    for round in 1..=2 {
        for expected in 1..=MAX_RECEIVES {
            let m = receive_one(queue, A).await;
            let id = id.get_or_insert_with(|| m.id.clone());
            assert_eq!(
                (m.id.as_str(), m.body.as_str(), m.receive_count),
                (id.as_str(), body.as_str(), expected),
                "round {round}"
            );
            handed_out += 1;
            queue.release(A, &m.receipt, Duration::ZERO).await.expect("release");
        }
        assert_nothing_to_receive(queue, A).await;
        let dead = queue.dead_letters(A).await.expect("dead letters");
        assert_eq!(
            dead.iter()
                .map(|d| (d.id.as_str(), d.body.as_str()))
                .collect::<Vec<_>>(),
            vec![(id.as_deref().unwrap(), body.as_str())],
            "round {round}"
        );
        queue.replay(A, &dead[0].id).await.expect("replay");
        id = None;
    }
    assert_eq!(handed_out, 2 * MAX_RECEIVES);
    let m = receive_one(queue, A).await;
    assert_eq!((m.body.as_str(), m.receive_count), (body.as_str(), 1));
    queue.ack(A, &m.receipt).await.expect("ack");
    assert_nothing_to_receive(queue, A).await;
    assert!(queue.dead_letters(A).await.expect("dead letters").is_empty());
}

/// Replaying an id that is no dead letter of that queue is `NotFound`.
pub async fn replaying_an_unknown_dead_letter_is_not_found(queue: &dyn Queue) {
    let result = queue.replay(A, &unique("no-such-message")).await;
    assert!(matches!(result, Err(QueueError::NotFound(_))), "got {result:?}");
}

/// Messages, receives and dead letters of one queue never show on another.
pub async fn queues_are_independent(queue: &dyn Queue) {
    queue.send(A, "for a").await.expect("send");
    for other in QueueName::ALL.into_iter().filter(|q| *q != A) {
        assert_nothing_to_receive(queue, other).await;
    }
    let b_id = queue.send(B, "for b").await.expect("send");
    let mb = receive_one(queue, B).await;
    assert_eq!((mb.id.as_str(), mb.body.as_str()), (b_id.as_str(), "for b"));

    // Exhaust A's message into A's dead letters; B's and the third queue's stay empty.
    for _ in 0..MAX_RECEIVES {
        let m = receive_one(queue, A).await;
        assert_eq!(m.body, "for a");
        queue.release(A, &m.receipt, Duration::ZERO).await.expect("release");
    }
    assert_nothing_to_receive(queue, A).await;
    assert_eq!(queue.dead_letters(A).await.expect("dead letters").len(), 1);
    for other in QueueName::ALL.into_iter().filter(|q| *q != A) {
        assert!(queue.dead_letters(other).await.expect("dead letters").is_empty());
    }
    let dead_id = queue.dead_letters(A).await.expect("dead letters")[0].id.clone();
    let result = queue.replay(B, &dead_id).await;
    assert!(
        matches!(result, Err(QueueError::NotFound(_))),
        "replayed A's letter via B: {result:?}"
    );
    queue.ack(B, &mb.receipt).await.expect("ack");
}

/// A message that fails every time ends in the dead letters while the messages around it
/// are all processed; none of them is dead-lettered.
pub async fn one_failing_message_does_not_block_the_others(queue: &dyn Queue) {
    let poison = queue.send(A, "poison").await.expect("send");
    let mut good = BTreeSet::new();
    for i in 0..6 {
        good.insert(queue.send(A, &format!("good {i}")).await.expect("send"));
    }
    let mut done = BTreeSet::new();
    let mut poison_receives = 0;
    for _round in 0..30 {
        let batch = queue.receive(A, 3).await.expect("receive");
        if batch.is_empty() {
            break;
        }
        for m in batch {
            if m.id == poison {
                poison_receives += 1;
                queue.release(A, &m.receipt, Duration::ZERO).await.expect("release");
            } else {
                queue.ack(A, &m.receipt).await.expect("ack");
                assert!(done.insert(m.id), "a processed message came back");
            }
        }
    }
    assert_eq!(done, good);
    assert_eq!(poison_receives, MAX_RECEIVES);
    let dead = queue.dead_letters(A).await.expect("dead letters");
    assert_eq!(
        dead.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [poison.as_str()]
    );
    assert_nothing_to_receive(queue, A).await;
}

/// `depth` counts what waits, what is in flight and what is dead, per queue: each send,
/// receive, dead-letter and ack moves a message between the counts, and another queue's
/// messages never show.
pub async fn depth_counts_waiting_in_flight_and_dead_messages(queue: &dyn Queue) {
    let depth = |w, f, d| (w, f, d);
    let of = |q| async move {
        let d = queue.depth(q).await.expect("depth");
        assert_eq!(d.queue, q);
        (d.waiting, d.in_flight, d.dead_letters)
    };
    assert_eq!(of(A).await, depth(0, 0, 0));
    for i in 0..3 {
        queue.send(A, &format!("depth {i}")).await.expect("send");
    }
    queue.send(B, "elsewhere").await.expect("send");
    assert_eq!(of(A).await, depth(3, 0, 0));
    let got = receive_up_to(queue, A, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(of(A).await, depth(1, 2, 0));
    queue
        .dead_letter(A, &got[0].receipt, &got[0].body, "depth test")
        .await
        .expect("dead letter");
    queue.ack(A, &got[1].receipt).await.expect("ack");
    assert_eq!(of(A).await, depth(1, 0, 1));
    assert_eq!(of(B).await, depth(1, 0, 0));
}
