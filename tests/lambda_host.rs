//! Functions run the way Lambda runs them: a fake Lambda Runtime API (axum) that hands out
//! events and collects answers, the stack of template.yaml created on the emulators, and a process harness.
//!
//! - [`FakeRuntimeApi`] implements `GET /2018-06-01/runtime/invocation/next` and the
//!   `/response`, `/error` and `/init/error` posts the way Lambda's Runtime API does.
//! - [`Template`] reads template.yaml (CloudFormation short tags included): the functions,
//!   their environment (Globals + own), the resources they reference.
//! - [`Stack`] creates the template's table, queues, bucket and secrets on DynamoDB Local and
//!   moto under per-test names, and resolves each function's environment against them.
//! - [`FunctionProcess`] starts a function's binary with that environment against its own
//!   fake Runtime API, and turns "invoke with this event" into the function's answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, Mutex as AsyncMutex};

/// How long a function gets to start or to answer one event.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The workspace root (the tests crate sits in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate has a parent")
        .to_path_buf()
}

/// The function packages: one folder per function under `functions/`.
pub fn function_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("functions"))
        .expect("functions/")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ------------------------------------------------------------------------------ binaries

/// The binary cargo built for function `name` in this test's profile (`target/debug/<name>`).
///
/// `scripts/test` builds them (`cargo build --workspace --bins`) before nextest runs. A
/// missing binary, or one older than the sources it is built from, fails the test with the
/// command to run, rather than testing stale code.
pub fn function_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/<profile>/deps/it-<hash> -> <target>/<profile>/<name>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let binary = profile_dir.join(name);
    let hint = "build the function binaries first: `cargo build --workspace --bins` (scripts/test does)";
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{}: not found; {hint}", binary.display()));
    let root = workspace_root();
    // Source files only: a change to them always makes cargo relink the binary (a change to
    // the root manifest or the lock file need not).
    let sources = [root.join("shared"), root.join("functions").join(name)];
    if let Some((newest, at)) = sources.iter().filter_map(|p| newest_file(p)).max_by_key(|(_, t)| *t) {
        assert!(
            at <= built,
            "{} is older than {}; {hint}",
            binary.display(),
            newest.display()
        );
    }
    binary
}

fn newest_file(path: &Path) -> Option<(PathBuf, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return Some((path.to_path_buf(), meta.modified().ok()?));
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| newest_file(&e.path()))
        .max_by_key(|(_, t)| *t)
}

// ------------------------------------------------------------------------------ fake Runtime API

/// What a function process told its Runtime API.
#[derive(Debug, Clone)]
enum Report {
    /// `GET /invocation/next`: the process waits for an event.
    Polled,
    Response {
        request_id: String,
        body: Value,
    },
    Error {
        request_id: String,
        body: Value,
    },
    InitError {
        body: Value,
    },
}

struct RuntimeState {
    events: AsyncMutex<mpsc::UnboundedReceiver<(String, Value)>>,
    reports: mpsc::UnboundedSender<Report>,
    function_arn: String,
}

/// A Lambda Runtime API on a loopback port, for one function process.
pub struct FakeRuntimeApi {
    addr: SocketAddr,
    events: mpsc::UnboundedSender<(String, Value)>,
    reports: mpsc::UnboundedReceiver<Report>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeRuntimeApi {
    pub async fn start(function_name: &str) -> FakeRuntimeApi {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let state = Arc::new(RuntimeState {
            events: AsyncMutex::new(events_rx),
            reports: reports_tx,
            function_arn: format!("arn:aws:lambda:eu-west-1:123456789012:function:{function_name}"),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake Runtime API");
        });
        FakeRuntimeApi {
            addr,
            events: events_tx,
            reports: reports_rx,
            server,
        }
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` (host:port, as Lambda sets it).
    pub fn address(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FakeRuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(state): State<Arc<RuntimeState>>) -> Response {
    let _ = state.reports.send(Report::Polled);
    let Some((request_id, event)) = state.events.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
        + PATIENCE.as_millis();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("header value"));
    };
    set("lambda-runtime-aws-request-id", request_id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set("lambda-runtime-invoked-function-arn", state.function_arn.clone());
    set(
        "lambda-runtime-trace-id",
        "Root=1-6922d41a-1b2c3d4e5f60718293a4b5c6;Parent=2f4e6a8c0b1d3e5f;Sampled=0".into(),
    );
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, event.to_string()).into_response()
}

fn json_or_text(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(State(state): State<Arc<RuntimeState>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    let _ = state.reports.send(Report::Response {
        request_id: id,
        body: json_or_text(&body),
    });
    StatusCode::ACCEPTED
}

async fn error(State(state): State<Arc<RuntimeState>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    let _ = state.reports.send(Report::Error {
        request_id: id,
        body: json_or_text(&body),
    });
    StatusCode::ACCEPTED
}

async fn init_error(State(state): State<Arc<RuntimeState>>, body: Bytes) -> StatusCode {
    let _ = state.reports.send(Report::InitError {
        body: json_or_text(&body),
    });
    StatusCode::ACCEPTED
}

// ------------------------------------------------------------------------------ processes

/// How an invocation (or the start) ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `/response` with this body.
    Response(Value),
    /// `/invocation/{id}/error` with this `{errorType, errorMessage}`.
    Error(Value),
    /// `/init/error` with this `{errorType, errorMessage}`.
    InitError(Value),
    /// The process ended without reporting (exit status and output).
    Exited(String),
    /// Nothing within [`PATIENCE`].
    TimedOut,
}

/// A function binary running against its own fake Runtime API.
pub struct FunctionProcess {
    pub name: String,
    runtime: FakeRuntimeApi,
    child: tokio::process::Child,
    output: Arc<Mutex<String>>,
    started: Instant,
    init: Option<Duration>,
    next_id: u64,
}

impl FunctionProcess {
    /// Start `binary` with exactly `env` (plus the variables Lambda itself sets) and wait
    /// until it polls for its first event, or reports or dies trying.
    pub async fn start(binary: &Path, name: &str, env: &[(String, String)]) -> (FunctionProcess, Outcome) {
        Self::start_with(&[], binary, name, env).await
    }

    /// [`FunctionProcess::start`] through a runner command (e.g. `qemu-aarch64 -L <sysroot>`
    /// for an arm64 bootstrap on an x86_64 machine); an empty runner starts the binary itself.
    pub async fn start_with(
        runner: &[String],
        binary: &Path,
        name: &str,
        env: &[(String, String)],
    ) -> (FunctionProcess, Outcome) {
        let runtime = FakeRuntimeApi::start(name).await;
        let mut command = match runner.split_first() {
            Some((program, args)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => tokio::process::Command::new(binary),
        };
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]0123456789abcdef")
            .env("TZ", ":UTC")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut out = output.lock().expect("output lock");
                    if out.len() < 256 * 1024 {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
            });
        }
        let mut process = FunctionProcess {
            name: name.to_string(),
            runtime,
            child,
            output,
            started,
            init: None,
            next_id: 0,
        };
        let outcome = process.wait_for(None).await;
        (process, outcome)
    }

    /// Time from spawning the process to its first poll for an event (its cold start).
    pub fn init_duration(&self) -> Option<Duration> {
        self.init
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    /// Hand the process one event and wait for its answer.
    pub async fn invoke(&mut self, event: Value) -> Outcome {
        self.next_id += 1;
        let request_id = format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), self.next_id);
        if self.runtime.events.send((request_id.clone(), event)).is_err() {
            return Outcome::Exited("the fake Runtime API is gone".into());
        }
        self.wait_for(Some(&request_id)).await
    }

    /// Invoke and require a `/response`; anything else fails the test with the output.
    pub async fn respond(&mut self, event: Value) -> Value {
        match self.invoke(event).await {
            Outcome::Response(body) => body,
            other => panic!(
                "{}: expected a response, got {other:?}\n--- output ---\n{}",
                self.name,
                self.output()
            ),
        }
    }

    /// Invoke a file of `tests/events/` and require a `/response`.
    pub async fn respond_to_file(&mut self, file: &str) -> Value {
        self.respond(event_file(file)).await
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for the answer to `request_id` (or, with `None`, for the start to finish).
    async fn wait_for(&mut self, request_id: Option<&str>) -> Outcome {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            tokio::select! {
                report = self.runtime.reports.recv() => match report {
                    Some(Report::Polled) => {
                        if self.init.is_none() {
                            self.init = Some(self.started.elapsed());
                            if request_id.is_none() {
                                return Outcome::Response(Value::Null);
                            }
                        }
                    }
                    Some(Report::Response { request_id: id, body }) if Some(id.as_str()) == request_id => {
                        return Outcome::Response(body)
                    }
                    Some(Report::Error { request_id: id, body }) if Some(id.as_str()) == request_id => {
                        return Outcome::Error(body)
                    }
                    Some(Report::InitError { body }) => return Outcome::InitError(body),
                    Some(other) => panic!("{}: unexpected report {other:?}", self.name),
                    None => return Outcome::Exited("the fake Runtime API stopped".into()),
                },
                status = self.child.wait() => {
                    // Let the output readers drain what the process wrote last.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // An init error may have been reported just before the exit.
                    if let Ok(Report::InitError { body }) = self.runtime.reports.try_recv() {
                        return Outcome::InitError(body);
                    }
                    return Outcome::Exited(format!("{status:?}\n{}", self.output()));
                }
                _ = tokio::time::sleep_until(deadline) => return Outcome::TimedOut,
            }
        }
    }

    /// Wait (briefly) for the process to end after an init error; its exit status.
    pub async fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .ok()
            .and_then(|r| r.ok())
    }
}

/// A Lambda event from `tests/events/`.
pub fn event_file(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ------------------------------------------------------------------------------ template.yaml

/// template.yaml, parsed.
pub struct Template {
    doc: Yaml,
}

impl Template {
    pub fn load() -> Template {
        let path = workspace_root().join("template.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Template {
            doc: serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("template.yaml: {e}")),
        }
    }

    fn resources(&self) -> Vec<(String, &Yaml)> {
        self.doc["Resources"]
            .as_mapping()
            .expect("template.yaml has Resources")
            .iter()
            .map(|(k, v)| (k.as_str().expect("resource id").to_string(), v))
            .collect()
    }

    /// The logical ids and properties of the resources of one type.
    pub fn resources_of_type(&self, kind: &str) -> Vec<(String, &Yaml)> {
        self.resources()
            .into_iter()
            .filter(|(_, r)| r["Type"].as_str() == Some(kind))
            .map(|(id, r)| (id, &r["Properties"]))
            .collect()
    }

    /// The logical id of function `name`: `helpdesk-api` is `HelpdeskApiFunction`
    /// (compared without case and dashes, so `beyondtrust-event` is `BeyondTrustEventFunction`).
    pub fn function_id(&self, name: &str) -> Option<String> {
        let want = format!("{}function", name.replace('-', "")).to_lowercase();
        self.resources_of_type("AWS::Serverless::Function")
            .into_iter()
            .map(|(id, _)| id)
            .find(|id| id.to_lowercase() == want)
    }

    /// A function's property, or the Globals' one.
    pub fn function_property(&self, logical_id: &str, property: &str) -> Option<&Yaml> {
        let own = &self.doc["Resources"][logical_id]["Properties"][property];
        if !own.is_null() {
            return Some(own);
        }
        let global = &self.doc["Globals"]["Function"][property];
        (!global.is_null()).then_some(global)
    }

    /// A function's environment: the Globals' variables overlaid with its own, unresolved.
    pub fn function_env(&self, logical_id: &str) -> Vec<(String, Yaml)> {
        let mut vars: Vec<(String, Yaml)> = Vec::new();
        for source in [
            &self.doc["Globals"]["Function"]["Environment"]["Variables"],
            &self.doc["Resources"][logical_id]["Properties"]["Environment"]["Variables"],
        ] {
            for (k, v) in source.as_mapping().into_iter().flatten() {
                let key = k.as_str().expect("variable name").to_string();
                vars.retain(|(name, _)| *name != key);
                vars.push((key, v.clone()));
            }
        }
        vars
    }

    /// A parameter's default value.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        scalar(&self.doc["Parameters"][name]["Default"])
    }

    pub fn parameter_names(&self) -> Vec<String> {
        self.doc["Parameters"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .collect()
    }

    /// The raw document, for checks on the template itself.
    pub fn document(&self) -> &Yaml {
        &self.doc
    }
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Resolve a CloudFormation value (`!Ref`, `!Sub`, `!GetAtt`, or their long forms) with
/// `lookup` giving the value of a name (`Table`, `Queue.Arn`, `AWS::Region`, a parameter).
pub fn resolve(value: &Yaml, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let need = |name: &str| lookup(name).ok_or_else(|| format!("no value for {name}"));
    let sub = |text: &str| -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text}"))?
                + start;
            out.push_str(&need(&rest[start + 2..end])?);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    };
    if let Some(s) = scalar(value) {
        return Ok(s);
    }
    match value {
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let inner = scalar(&tagged.value).ok_or_else(|| format!("{tag} of a non-scalar"))?;
            match tag.trim_start_matches('!') {
                "Ref" | "GetAtt" => need(&inner),
                "Sub" => sub(&inner),
                other => Err(format!("unsupported tag !{other}")),
            }
        }
        Yaml::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().expect("one entry");
            match (k.as_str(), v) {
                (Some("Ref"), v) => need(&scalar(v).unwrap_or_default()),
                (Some("Fn::Sub"), v) => sub(&scalar(v).unwrap_or_default()),
                (Some("Fn::GetAtt"), Yaml::Sequence(parts)) => {
                    let parts: Vec<String> = parts.iter().filter_map(scalar).collect();
                    need(&parts.join("."))
                }
                (k, _) => Err(format!("unsupported intrinsic {k:?}")),
            }
        }
        other => Err(format!("unsupported value {other:?}")),
    }
}

// ------------------------------------------------------------------------------ the stack

/// The template's storage, queues and secrets on the emulators, named for one test.
pub struct Stack {
    pub stage: String,
    values: HashMap<String, String>,
    dynamodb_url: String,
    moto_url: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Stack {
    /// Create every table, queue, bucket and secret of the template; `None` (skipped
    /// loudly, a failure under CI) without the emulators. The API token secret holds `api_token`.
    pub async fn create(template: &Template, api_token: &str) -> Option<Stack> {
        let dynamodb_url = crate::emulators::dynamodb()?;
        let moto_url = crate::emulators::moto()?;
        let ddb_conf = crate::emulators::aws_config(&dynamodb_url).await;
        let moto_conf = crate::emulators::aws_config(&moto_url).await;
        let stage = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut stack = Stack {
            values: HashMap::new(),
            dynamodb: aws_sdk_dynamodb::Client::new(&ddb_conf),
            sqs: aws_sdk_sqs::Client::new(&moto_conf),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&moto_conf)
                    .force_path_style(true)
                    .build(),
            ),
            secrets: aws_sdk_secretsmanager::Client::new(&moto_conf),
            stage: stage.clone(),
            dynamodb_url,
            moto_url,
        };
        for (k, v) in [
            ("AWS::Region", "eu-west-1"),
            ("AWS::AccountId", "123456789012"),
            ("AWS::Partition", "aws"),
            ("AWS::StackName", "deskbridge-test"),
            ("AWS::URLSuffix", "amazonaws.com"),
        ] {
            stack.values.insert(k.into(), v.into());
        }
        for name in template.parameter_names() {
            let value = template.parameter_default(&name).unwrap_or_default();
            stack.values.insert(name, value);
        }
        stack.values.insert("Stage".into(), stage.clone());
        for (id, props) in template.resources_of_type("AWS::DynamoDB::Table") {
            let name = format!("{stage}-{id}");
            stack.create_table(&name, props).await;
            stack.values.insert(id, name);
        }
        // Dead-letter queues first: the others name them in their redrive policy.
        let mut queues = template.resources_of_type("AWS::SQS::Queue");
        queues.sort_by_key(|(_, p)| !p["RedrivePolicy"].is_null());
        for (id, props) in queues {
            stack.create_queue(&id, props).await;
        }
        for (id, _) in template.resources_of_type("AWS::S3::Bucket") {
            let name = format!("{stage}-{}", id.to_lowercase());
            stack
                .s3
                .create_bucket()
                .bucket(&name)
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                        .build(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
            stack.values.insert(id, name);
        }
        for (id, _) in template.resources_of_type("AWS::SecretsManager::Secret") {
            let created = stack
                .secrets
                .create_secret()
                .name(format!("{stage}/{id}"))
                .secret_string(api_token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create secret {id}: {e:?}"));
            // Ref of a secret is its ARN.
            stack.values.insert(id, created.arn().expect("secret ARN").to_string());
        }
        Some(stack)
    }

    async fn create_table(&self, name: &str, props: &Yaml) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
            ProjectionType, ScalarAttributeType,
        };
        let keys = |schema: &Yaml| -> Vec<KeySchemaElement> {
            schema
                .as_sequence()
                .expect("KeySchema")
                .iter()
                .map(|k| {
                    KeySchemaElement::builder()
                        .attribute_name(k["AttributeName"].as_str().expect("AttributeName"))
                        .key_type(KeyType::from(k["KeyType"].as_str().expect("KeyType")))
                        .build()
                        .expect("key schema")
                })
                .collect()
        };
        assert_eq!(
            props["BillingMode"].as_str(),
            Some("PAY_PER_REQUEST"),
            "table billing mode"
        );
        let mut create = self
            .dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(keys(&props["KeySchema"])));
        for a in props["AttributeDefinitions"]
            .as_sequence()
            .expect("AttributeDefinitions")
        {
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(a["AttributeName"].as_str().expect("AttributeName"))
                    .attribute_type(ScalarAttributeType::from(
                        a["AttributeType"].as_str().expect("AttributeType"),
                    ))
                    .build()
                    .expect("attribute definition"),
            );
        }
        for g in props["GlobalSecondaryIndexes"].as_sequence().into_iter().flatten() {
            create = create.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(g["IndexName"].as_str().expect("IndexName"))
                    .set_key_schema(Some(keys(&g["KeySchema"])))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(
                                g["Projection"]["ProjectionType"].as_str().unwrap_or("ALL"),
                            ))
                            .build(),
                    )
                    .build()
                    .expect("index"),
            );
        }
        create
            .send()
            .await
            .unwrap_or_else(|e| panic!("create table {name} from template.yaml: {e:?}"));
    }

    async fn create_queue(&mut self, id: &str, props: &Yaml) {
        use aws_sdk_sqs::types::QueueAttributeName;
        let name = format!("{}-{id}", self.stage);
        let mut create = self.sqs.create_queue().queue_name(&name);
        for (attr, key) in [
            (QueueAttributeName::VisibilityTimeout, "VisibilityTimeout"),
            (QueueAttributeName::MessageRetentionPeriod, "MessageRetentionPeriod"),
        ] {
            if let Some(v) = scalar(&props[key]) {
                create = create.attributes(attr, v);
            }
        }
        if !props["RedrivePolicy"].is_null() {
            let values = self.values.clone();
            let lookup = move |n: &str| values.get(n).cloned();
            let target = resolve(&props["RedrivePolicy"]["deadLetterTargetArn"], &lookup).expect("DLQ ARN");
            let max = scalar(&props["RedrivePolicy"]["maxReceiveCount"]).expect("maxReceiveCount");
            create = create.attributes(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": target, "maxReceiveCount": max}).to_string(),
            );
        }
        let url = create
            .send()
            .await
            .unwrap_or_else(|e| panic!("create queue {name}: {e:?}"))
            .queue_url()
            .expect("queue URL")
            .to_string();
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes");
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .expect("queue ARN")
            .clone();
        self.values.insert(format!("{id}.Arn"), arn);
        self.values.insert(format!("{id}.QueueName"), name);
        self.values.insert(id.to_string(), url);
    }

    /// What `!Ref`/`!GetAtt`/`${}` of `name` gives in this stack.
    pub fn value(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }

    /// The DynamoDB table's name.
    pub fn table(&self) -> String {
        let (id, _) = Template::load()
            .resources_of_type("AWS::DynamoDB::Table")
            .into_iter()
            .next()
            .expect("a table in template.yaml");
        self.values[&id].clone()
    }

    /// Function `logical_id`'s environment as Lambda would set it in this stack, plus the
    /// AWS SDK's pointers at the emulators, dummy credentials, and the opt-in to loopback
    /// vendor URLs (the fakes).
    pub fn function_env(&self, template: &Template, logical_id: &str) -> Vec<(String, String)> {
        let mut env = template_env(template, logical_id, &|n| self.value(n));
        env.extend(
            [
                ("AWS_REGION", "eu-west-1"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("AWS_ENDPOINT_URL", self.moto_url.as_str()),
                ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_url.as_str()),
                // The vendor fakes listen on http://127.0.0.1.
                ("DESKBRIDGE_ALLOW_LOOPBACK_VENDORS", "true"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env
    }
}

/// A function's template environment resolved with `lookup`, plus what Lambda derives
/// from the function's properties (memory size, log format and level).
pub fn template_env(
    template: &Template,
    logical_id: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = template
        .function_env(logical_id)
        .into_iter()
        .map(|(k, v)| {
            let value = resolve(&v, lookup).unwrap_or_else(|e| panic!("{logical_id}: {k}: {e}"));
            (k, value)
        })
        .collect();
    let memory = template
        .function_property(logical_id, "MemorySize")
        .and_then(scalar)
        .unwrap_or_else(|| "128".into());
    env.push(("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), memory));
    if let Some(logging) = template.function_property(logical_id, "LoggingConfig") {
        if let Some(format) = scalar(&logging["LogFormat"]) {
            env.push(("AWS_LAMBDA_LOG_FORMAT".into(), format));
        }
        if let Some(level) = scalar(&logging["ApplicationLogLevel"]) {
            env.push(("AWS_LAMBDA_LOG_LEVEL".into(), level));
        }
    }
    env
}
