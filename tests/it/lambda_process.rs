//! Every function as a real Lambda process: each binary cargo built runs against a fake
//! Runtime API with the environment template.yaml gives it, DynamoDB Local and moto behind it.
//!
//! The tests talk to the processes only through what Lambda sees (environment, events,
//! answers) and check the effects through the helpdesk-api process, the queues and the fakes.

use base64::Engine;
use deskbridge::beyondtrust::fake::{FakeBeyondTrust, CLIENT_ID, CLIENT_SECRET};
use deskbridge::datto::fake::{Failure, FakeDatto};
use deskbridge::ports::{RecordStore, SecretStore, SecretString};
use deskbridge_tests::lambda_host::{
    event_file, function_binary, function_names, template_env, FunctionProcess, Outcome, Stack, Template,
};
use serde_json::{json, Value};

/// The bearer token inside the recorded helpdesk-api events.
const API_TOKEN: &str = "test-token-0123456789";
/// The `state` inside the recorded Datto webhook.
const DATTO_STATE: &str = "s3cr3t-example";
/// The token inside the recorded BeyondTrust event's path.
const BT_EVENT_TOKEN: &str = "btevt_4Qm9Zr2LxV7nK3pW";
const UID: &str = "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94";

/// Start function `name` against `stack`; the start must succeed.
async fn start(stack: &Stack, template: &Template, name: &str) -> FunctionProcess {
    let id = template
        .function_id(name)
        .unwrap_or_else(|| panic!("{name}: no function in template.yaml"));
    let env = stack.function_env(template, &id);
    let (mut process, outcome) = FunctionProcess::start(&function_binary(name), name, &env).await;
    match outcome {
        Outcome::Response(_) => {}
        other => panic!("{name} did not start: {other:?}\n--- output ---\n{}", process.output()),
    }
    assert!(process.is_running());
    process
}

/// An API Gateway v2 event for the helpdesk API, shaped like the recorded ones.
fn api_event(method: &str, path_and_query: &str, body: Option<Value>) -> Value {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut event = event_file("helpdesk-api-create-customer.json");
    event["rawPath"] = json!(path);
    event["rawQueryString"] = json!(query);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["pathParameters"]["proxy"] = json!(path.trim_start_matches("/api/"));
    let headers = event["headers"].as_object_mut().unwrap();
    headers.insert("x-agent-id".into(), json!("1"));
    match body {
        Some(b) => {
            let text = b.to_string();
            headers.insert("content-length".into(), json!(text.len().to_string()));
            event["body"] = json!(text);
        }
        None => {
            headers.remove("content-length");
            headers.remove("content-type");
            event.as_object_mut().unwrap().remove("body");
        }
    }
    event
}

/// Status and JSON body of an API Gateway v2 response.
fn http_answer(response: &Value) -> (u16, Value) {
    let status = response["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("no statusCode: {response}")) as u16;
    let text = response["body"].as_str().unwrap_or_default();
    let bytes = if response["isBase64Encoded"] == json!(true) {
        base64::engine::general_purpose::STANDARD.decode(text).unwrap()
    } else {
        text.as_bytes().to_vec()
    };
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn api(helpdesk: &mut FunctionProcess, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_answer(&helpdesk.respond(api_event(method, path, body)).await)
}

/// [`api`], requiring `status`; the body.
async fn api_expect(
    helpdesk: &mut FunctionProcess,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let (s, v) = api(helpdesk, method, path, body).await;
    assert_eq!(s, status, "{method} {path}: {v}");
    v
}

/// The message ids an SQS function's answer lists as failed.
fn failed_ids(answer: &Value) -> Vec<String> {
    let failures = answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a partial batch response: {answer}"));
    let mut ids: Vec<String> = failures
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn message_ids(event: &Value) -> Vec<String> {
    event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["messageId"].as_str().unwrap().to_string())
        .collect()
}

fn body_of(event: &Value, message_id: &str) -> String {
    event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["messageId"] == json!(message_id))
        .map(|r| r["body"].as_str().unwrap().to_string())
        .unwrap()
}

/// All bodies waiting in queue `logical_id` (received, so invisible for a while).
async fn drain(stack: &Stack, logical_id: &str) -> Vec<String> {
    let url = stack.value(logical_id).unwrap();
    let mut bodies = Vec::new();
    loop {
        let got = stack
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = got.messages();
        if messages.is_empty() {
            return bodies;
        }
        bodies.extend(messages.iter().filter_map(|m| m.body().map(str::to_string)));
    }
}

/// The messages waiting in queue `logical_id`, received as Lambda's SQS trigger receives
/// them and handed over as its event (real receipt handles, so acks and dead-letters work).
async fn sqs_event(stack: &Stack, logical_id: &str) -> Value {
    let url = stack.value(logical_id).unwrap();
    let arn = stack.value(&format!("{logical_id}.Arn")).unwrap();
    let got = stack
        .sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = got
        .messages()
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "eu-west-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// A malformed message is never silently dropped: the function either lists it as failed
/// (SQS redelivers it, then dead-letters it) or has moved it to the queue's DLQ itself.
async fn assert_failed_or_dead_lettered(stack: &Stack, dlq: &str, failed: &[String], id: &str, body: &str) {
    if failed.iter().any(|f| f == id) {
        return;
    }
    let dead = drain(stack, dlq).await;
    assert!(
        dead.iter().any(|d| d == body),
        "message {id} was neither reported failed nor dead-lettered"
    );
}

/// Make the next ticket number `n` (as in the recorded story, where the alert's ticket is 1042).
async fn next_ticket_number(stack: &Stack, n: u64) {
    let store = deskbridge::adapters::dynamo::DynamoRecordStore::new(stack.dynamodb.clone(), stack.table());
    store.increment("counter", "ticket", n - 1).await.unwrap();
}

async fn put_secret(stack: &Stack, name: &str, value: &str) {
    let store = deskbridge::adapters::secrets_manager::SecretsManagerStore::new(
        stack.secrets.clone(),
        format!("deskbridge/{}/", stack.stage),
    );
    store.put(name, &SecretString::new(value)).await.unwrap();
}

/// A missing `TABLE_NAME` stops every function at its cold start with an init error that
/// names the variable. Needs no emulator: the functions fail before they call AWS.
#[tokio::test]
async fn a_missing_environment_variable_is_reported_as_an_init_error() {
    let template = Template::load();
    for name in function_names() {
        let missing = "TABLE_NAME";
        let id = template.function_id(&name).unwrap();
        let mut env = template_env(&template, &id, &|n| Some(format!("unused-{n}")));
        assert!(
            !env.iter().any(|(k, _)| k == "DESKBRIDGE_ALLOW_LOOPBACK_VENDORS"),
            "{name}: template.yaml must not admit loopback vendor URLs"
        );
        assert!(
            env.iter().any(|(k, _)| k == missing),
            "{name}: template.yaml does not set {missing}"
        );
        env.retain(|(k, _)| k != missing);
        env.push(("AWS_REGION".into(), "eu-west-1".into()));
        let (mut process, outcome) = FunctionProcess::start(&function_binary(&name), &name, &env).await;
        let Outcome::InitError(report) = outcome else {
            panic!(
                "{name} without {missing}: expected an init error, got {outcome:?}\n{}",
                process.output()
            );
        };
        let message = report["errorMessage"].as_str().unwrap_or_default();
        assert!(message.contains(missing), "{name}: {report}");
        assert!(report["errorType"].is_string(), "{name}: {report}");
        let status = process
            .exit_status()
            .await
            .expect("the process ends after its init error");
        assert!(!status.success(), "{name} exited with {status}");
    }
}

/// The panic policy: the release profile keeps unwinding (cargo-lambda's injected
/// `panic = "abort"` is overridden in Cargo.toml, and scripts/build-lambdas refuses to build
/// without that), so a panicking handler is reported as an invocation error and the same
/// process serves the next event.
#[tokio::test]
async fn a_panicking_handler_is_an_invocation_error_and_the_process_serves_the_next_event() {
    let manifest = std::fs::read_to_string(deskbridge_tests::lambda_host::workspace_root().join("Cargo.toml")).unwrap();
    let manifest: toml_edit::DocumentMut = manifest.parse().expect("Cargo.toml");
    assert_eq!(
        manifest["profile"]["release"]["panic"].as_str(),
        Some("unwind"),
        "[profile.release] must set panic = \"unwind\" itself, or cargo-lambda builds with panic=abort"
    );
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lambda-panic-probe"));
    let (mut probe, outcome) = FunctionProcess::start(&binary, "lambda-panic-probe", &[]).await;
    assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");
    let Outcome::Error(report) = probe.invoke(json!({"panic": true})).await else {
        panic!("a panic was not reported as an invocation error\n{}", probe.output());
    };
    assert!(
        report["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("asked to panic"),
        "{report}"
    );
    assert_eq!(probe.respond(json!({"n": 2})).await, json!({"n": 2}));
    assert!(probe.is_running());
}

/// The helpdesk API and the Datto functions, each its own process, feeding one another
/// through the stack: the recorded webhook makes ticket 1042, the mail for the same alert is
/// a duplicate, the enricher adds Datto's details, an agent's close is propagated (after a
/// failure listed in the batch response), the schedule syncs, and with the table gone the
/// functions answer 503 / report handler errors and keep serving.
#[tokio::test]
async fn the_helpdesk_and_datto_functions_serve_their_recorded_events_as_lambda_processes() {
    let template = Template::load();
    let Some(stack) = Stack::create(&template, API_TOKEN).await else {
        return;
    };
    let datto = FakeDatto::start().await;
    datto.seed_fixtures();

    // helpdesk-api: its five recorded events.
    let mut helpdesk = start(&stack, &template, "helpdesk-api").await;
    let healthz = helpdesk.respond_to_file("helpdesk-api-healthz.json").await;
    let (s, v) = http_answer(&healthz);
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")), "{v}");
    assert!(
        healthz["body"].as_str().unwrap().ends_with("}\n"),
        "JSON answers end with a newline: {healthz}"
    );
    let (s, v) = http_answer(&helpdesk.respond_to_file("helpdesk-api-wrong-token.json").await);
    assert_eq!((s, v["error"].as_str()), (401, Some("UNAUTHORIZED")), "{v}");
    let (s, v) = http_answer(&helpdesk.respond_to_file("helpdesk-api-malformed-json.json").await);
    assert_eq!((s, v["error"].as_str()), (400, Some("MALFORMED_JSON")), "{v}");
    let (s, v) = http_answer(&helpdesk.respond_to_file("helpdesk-api-create-customer.json").await);
    assert_eq!((s, v["name"].as_str()), (201, Some("Acme Ltd")), "{v}");
    let (s, v) = http_answer(&helpdesk.respond_to_file("helpdesk-api-list-customers.json").await);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{v}");

    // Set-up through the API: a ticket type, Datto (the fake), an agent; the recorded state.
    let tt = api_expect(
        &mut helpdesk,
        "POST",
        "/api/ticket-types",
        Some(json!({"name": "Monitoring alert", "default_priority": "low"})),
        201,
    )
    .await;
    api_expect(
        &mut helpdesk,
        "PUT",
        "/api/config/datto",
        Some(
            json!({"api_url": datto.base_url(), "api_key": FakeDatto::API_KEY, "api_secret": FakeDatto::API_SECRET,
                    "alert_method": "both", "from_address": "noreply@centrastage.net",
                    "default_ticket_type_id": tt["id"], "import_mode": "customer_per_site"}),
        ),
        200,
    )
    .await;
    api_expect(
        &mut helpdesk,
        "POST",
        "/api/agents",
        Some(json!({"name": "Alice Martin", "email": "alice@msp.example"})),
        201,
    )
    .await;
    let state = deskbridge::datto::state::WebhookState {
        current: DATTO_STATE.into(),
        previous: None,
        rotated_at: None,
    };
    put_secret(
        &stack,
        deskbridge::datto::state::SECRET_NAME,
        &serde_json::to_string(&state).unwrap(),
    )
    .await;
    next_ticket_number(&stack, 1042).await;

    // datto-webhook: the recorded raise makes ticket 1042; the same post again is a duplicate.
    let mut webhook = start(&stack, &template, "datto-webhook").await;
    let (s, v) = http_answer(&webhook.respond_to_file("datto-webhook-raised.json").await);
    assert_eq!(
        (s, v["result"].as_str(), v["ticket_id"].as_u64()),
        (200, Some("created"), Some(1042)),
        "{v}"
    );
    let (s, v) = http_answer(&webhook.respond_to_file("datto-webhook-raised.json").await);
    assert_eq!((s, v["result"].as_str()), (200, Some("duplicate")), "{v}");
    // The new ticket asked for its Datto details on the alert-enrich queue.
    let queued = drain(&stack, "AlertEnrichQueue").await;
    assert!(queued.iter().any(|b| b.contains("1042")), "{queued:?}");

    // ses-inbound-mail: the same alert by mail (read from the bucket) is one more source, no new ticket.
    let bucket = stack.value("InboundMailBucket").expect("the mail bucket");
    let ses_event = event_file("ses-inbound-mail.json");
    let message_id = ses_event["Records"][0]["ses"]["mail"]["messageId"].as_str().unwrap();
    stack
        .s3
        .put_object()
        .bucket(&bucket)
        .key(format!("inbound/{message_id}"))
        .body(
            std::fs::read(format!("{}/fixtures/datto/alert-email.eml", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .into(),
        )
        .send()
        .await
        .unwrap();
    // Without MAIL_BUCKET it does not start, and says why.
    let mut env = stack.function_env(&template, &template.function_id("ses-inbound-mail").unwrap());
    env.retain(|(k, _)| k != "MAIL_BUCKET");
    let (_, outcome) = FunctionProcess::start(&function_binary("ses-inbound-mail"), "ses-inbound-mail", &env).await;
    match outcome {
        Outcome::InitError(report) => assert!(
            report["errorMessage"].as_str().unwrap().contains("MAIL_BUCKET"),
            "{report}"
        ),
        other => panic!("ses-inbound-mail without MAIL_BUCKET: {other:?}"),
    }
    let mut mail = start(&stack, &template, "ses-inbound-mail").await;
    let v = mail.respond(ses_event.clone()).await;
    assert_eq!(v["mails"][0]["result"], "duplicate", "{v}");
    let alert = api_expect(&mut helpdesk, "GET", &format!("/api/alerts/{UID}"), None, 200).await;
    let sources = alert["sources"].as_array().unwrap();
    assert!(
        sources.contains(&json!("webhook")) && sources.contains(&json!("email")),
        "{alert}"
    );
    let (_, tickets) = api(&mut helpdesk, "GET", &format!("/api/tickets?alert_uid={UID}"), None).await;
    assert_eq!(tickets["items"].as_array().map(Vec::len), Some(1), "{tickets}");

    // alert-enricher: Datto's details land on ticket 1042 once.
    let mut enricher = start(&stack, &template, "alert-enricher").await;
    let v = enricher.respond_to_file("alert-enricher.json").await;
    assert_eq!(failed_ids(&v), Vec::<String>::new(), "{v}");
    let (_, ticket) = api(&mut helpdesk, "GET", "/api/tickets/1042", None).await;
    let details = ticket["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["note"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Details from Datto RMM")
        })
        .count();
    assert_eq!(details, 1, "{ticket}");

    // An agent closes ticket 1042: a ticket-closed message goes on the queue.
    api_expect(
        &mut helpdesk,
        "POST",
        "/api/tickets/1042/close",
        Some(json!({"note": "fixed"})),
        200,
    )
    .await;
    let queued = drain(&stack, "TicketClosedQueue").await;
    assert!(queued.iter().any(|b| b.contains("1042")), "{queued:?}");

    // ticket-close-propagator: Datto refuses the first lookup, so 1042 is listed as failed
    // (1057 has no pending close and is done); the redelivery resolves the alert once.
    let mut propagator = start(&stack, &template, "ticket-close-propagator").await;
    let event = event_file("ticket-close-propagator.json");
    let ids = message_ids(&event);
    let (id_1042, malformed) = (ids[0].clone(), ids[2].clone());
    datto.fail_next_on("/api/v2/alert/", 1, Failure::Status(409));
    let v = propagator.respond(event.clone()).await;
    let failed = failed_ids(&v);
    assert!(failed.contains(&id_1042), "1042 must be retried: {v}");
    assert!(!failed.contains(&ids[1]), "1057 has nothing to propagate: {v}");
    assert_failed_or_dead_lettered(
        &stack,
        "TicketClosedDlq",
        &failed,
        &malformed,
        &body_of(&event, &malformed),
    )
    .await;
    assert_eq!(datto.alert(UID).unwrap()["resolved"], json!(false));
    let v = propagator.respond(event.clone()).await;
    assert!(!failed_ids(&v).contains(&id_1042), "{v}");
    assert_eq!(datto.alert(UID).unwrap()["resolved"], json!(true));
    assert_eq!(datto.count(&format!("/api/v2/alert/{UID}/resolve")), 1);

    // scheduled-alert-sync: the recorded schedule event queues a run on datto-sync; the same
    // process consumes that message (as Lambda's SQS trigger hands it over) and runs it.
    let mut sync = start(&stack, &template, "scheduled-alert-sync").await;
    let queued = sync.respond_to_file("scheduled-alert-sync.json").await;
    assert_eq!(queued["state"], json!("queued"), "{queued}");
    let run_id = queued["run_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no run_id: {queued}"));
    let runs = sqs_event(&stack, "DattoSyncQueue").await;
    assert_eq!(message_ids(&runs).len(), 1, "one queued run: {runs}");
    let v = sync.respond(runs).await;
    assert_eq!(failed_ids(&v), Vec::<String>::new(), "{v}");
    let (_, run) = api(&mut helpdesk, "GET", &format!("/api/sync/datto/runs/{run_id}"), None).await;
    assert_eq!(run["state"], json!("done"), "{run}");
    assert_eq!(run["skipped"], json!(false), "{run}");
    // A run message that can never be read is dead-lettered at once, not retried.
    let garbage = "{\"run_id\": \"not a number\"}";
    stack
        .sqs
        .send_message()
        .queue_url(stack.value("DattoSyncQueue").unwrap())
        .message_body(garbage)
        .send()
        .await
        .unwrap();
    let v = sync.respond(sqs_event(&stack, "DattoSyncQueue").await).await;
    assert_eq!(
        failed_ids(&v),
        Vec::<String>::new(),
        "dead-lettered, so not failed: {v}"
    );
    assert_eq!(drain(&stack, "DattoSyncDlq").await, vec![garbage.to_string()]);

    // The table goes away: HTTP functions answer 503, the others report handler errors,
    // and every process serves the next event.
    stack
        .dynamodb
        .delete_table()
        .table_name(stack.table())
        .send()
        .await
        .unwrap();
    let (s, _) = http_answer(&webhook.respond_to_file("datto-webhook-raised.json").await);
    assert_eq!(s, 503);
    // The sync either reports the failure as a handler error or answers why it skipped.
    match sync.invoke(event_file("scheduled-alert-sync.json")).await {
        Outcome::Error(report) => assert!(report["errorMessage"].is_string(), "{report}"),
        Outcome::Response(v) if v["skipped"] == json!(true) => {
            assert!(v["reason"].as_str().unwrap_or_default().contains("store"), "{v}")
        }
        other => panic!("scheduled-alert-sync without its table: {other:?}\n{}", sync.output()),
    }
    match mail.invoke(ses_event).await {
        Outcome::Error(report) => assert!(report["errorMessage"].is_string(), "{report}"),
        other => panic!("ses-inbound-mail without its table: {other:?}\n{}", mail.output()),
    }
    let v = propagator.respond(event.clone()).await;
    let failed = failed_ids(&v);
    assert!(failed.contains(&id_1042), "a store failure must leave 1042 queued: {v}");
    for p in [
        &mut helpdesk,
        &mut webhook,
        &mut mail,
        &mut enricher,
        &mut propagator,
        &mut sync,
    ] {
        assert!(p.is_running(), "{} stopped", p.name);
    }
    let (s, _) = http_answer(&helpdesk.respond_to_file("helpdesk-api-healthz.json").await);
    assert_eq!(s, 200);
}

/// The BeyondTrust functions as processes: the recorded end event is accepted and queued
/// (the lsid lands on the session-import queue), and the recorded import fails (listed) while
/// the report is missing and then puts the chat log on ticket 1042 by its technician.
#[tokio::test]
async fn the_beyondtrust_functions_serve_their_recorded_events_as_lambda_processes() {
    let template = Template::load();
    let Some(stack) = Stack::create(&template, API_TOKEN).await else {
        return;
    };
    let (_, bt) = FakeBeyondTrust::start().await;
    let mut helpdesk = start(&stack, &template, "helpdesk-api").await;
    api_expect(
        &mut helpdesk,
        "PUT",
        "/api/config/beyondtrust",
        Some(json!({"base_url": bt.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})),
        200,
    )
    .await;
    api_expect(
        &mut helpdesk,
        "POST",
        "/api/agents",
        Some(json!({"name": "Alice", "email": "a@d.example", "bt_enabled": true, "bt_name": "Alice Martin"})),
        201,
    )
    .await;
    let customer = api_expect(
        &mut helpdesk,
        "POST",
        "/api/customers",
        Some(json!({"name": "Acme Ltd"})),
        201,
    )
    .await;
    next_ticket_number(&stack, 1042).await;
    let (s, v) = api(
        &mut helpdesk,
        "POST",
        "/api/tickets",
        Some(json!({"summary": "Printer offline", "customer_id": customer["id"]})),
    )
    .await;
    assert_eq!((s, v["id"].as_u64()), (201, Some(1042)), "{v}");
    put_secret(&stack, deskbridge::beyondtrust::connect::EVENT_TOKEN, BT_EVENT_TOKEN).await;

    let mut events = start(&stack, &template, "beyondtrust-event").await;
    let (s, v) = http_answer(&events.respond_to_file("beyondtrust-event-session-end.json").await);
    assert_eq!((s, v["result"].as_str()), (200, Some("enqueued")), "{v}");
    let queued = drain(&stack, "SessionImportQueue").await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    let body: Value = serde_json::from_str(&queued[0]).unwrap();
    assert_eq!(body["lsid"], deskbridge::beyondtrust::fixtures::LSID_T1042);

    let mut import = start(&stack, &template, "session-import").await;
    let event = event_file("session-import.json");
    let v = import.respond(event.clone()).await;
    assert_eq!(
        failed_ids(&v),
        message_ids(&event),
        "no report yet: the message stays queued: {v}"
    );
    bt.set_report(
        deskbridge::beyondtrust::fixtures::LSID_T1042,
        deskbridge::beyondtrust::fixtures::REPORT,
    );
    let v = import.respond(event).await;
    assert_eq!(failed_ids(&v), Vec::<String>::new(), "{v}");
    let (_, ticket) = api(&mut helpdesk, "GET", "/api/tickets/1042", None).await;
    let by_alice: Vec<&Value> = ticket["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["agent_id"] == json!(1))
        .collect();
    assert_eq!(by_alice.len(), 1, "{ticket}");
}
