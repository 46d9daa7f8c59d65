//! template.yaml read as data: every function is built, has events, its own role and log
//! group; no IAM wildcard; queues outlast their consumers, dead-letter after 5 receives and
//! are alarmed; the table survives deletion and keeps point-in-time backups.
//!
//! CloudFormation's short tags (`!Ref X`, `!GetAtt X.Arn`) arrive as tagged YAML values;
//! the queue checks read their long forms (`Ref:`, `Fn::GetAtt: [X, Arn]`) too.

use std::collections::BTreeMap;

use deskbridge::ports::{QueueName, MAX_RECEIVES};
use deskbridge_tests::lambda_host::{function_names, workspace_root, Template};
use serde_yaml_ng::Value;
use serde_yaml_ng::Value as Yaml;

fn makefile() -> String {
    std::fs::read_to_string(workspace_root().join("infra/sam/Makefile")).expect("infra/sam/Makefile")
}

#[test]
fn every_function_package_is_a_template_function_with_a_build_target_events_a_role_and_logs() {
    let template = Template::load();
    let make = makefile();
    let events: Vec<String> = std::fs::read_dir(workspace_root().join("tests/events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let names = function_names();
    assert_eq!(
        names.len(),
        template.resources_of_type("AWS::Serverless::Function").len()
    );
    for name in names {
        let id = template
            .function_id(&name)
            .unwrap_or_else(|| panic!("functions/{name} has no function in template.yaml"));
        let doc = template.document();
        let function = &doc["Resources"][id.as_str()];
        assert_eq!(function["Metadata"]["BuildMethod"].as_str(), Some("makefile"), "{id}");
        assert_eq!(function["Properties"]["CodeUri"].as_str(), Some("infra/sam"), "{id}");
        let target = format!("build-{id}:\n\t$(call bootstrap,{name})");
        assert!(make.contains(&target), "infra/sam/Makefile lacks `{target}`");
        assert!(
            events.iter().any(|e| e.starts_with(&name) && e.ends_with(".json")),
            "no tests/events/{name}*.json"
        );
        let role = tagged_target(&function["Properties"]["Role"]).unwrap_or_else(|| panic!("{id} has no own Role"));
        assert_eq!(
            doc["Resources"][role.trim_end_matches(".Arn")]["Type"].as_str(),
            Some("AWS::IAM::Role"),
            "{id}"
        );
        let logs = tagged_target(&function["Properties"]["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| panic!("{id} has no own log group"));
        assert_eq!(
            doc["Resources"][logs.as_str()]["Type"].as_str(),
            Some("AWS::Logs::LogGroup"),
            "{id}"
        );
    }
}

/// The name a `!Ref X` / `!GetAtt X.Arn` points at.
fn tagged_target(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Tagged(t) => t.value.as_str().map(str::to_string),
        _ => None,
    }
}

/// The visibility timeout against each consumer's timeout is checked, in both YAML forms,
/// by `every_queue_has_a_long_enough_visibility_timeout_a_dead_letter_queue_and_an_alarm`.
#[test]
fn queue_triggers_report_partial_batch_failures() {
    let template = Template::load();
    let mut seen = 0;
    for (id, props) in template.resources_of_type("AWS::Serverless::Function") {
        for (_, event) in props["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() != Some("SQS") {
                continue;
            }
            seen += 1;
            let types: Vec<&str> = event["Properties"]["FunctionResponseTypes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(Yaml::as_str)
                .collect();
            assert_eq!(types, vec!["ReportBatchItemFailures"], "{id}");
        }
    }
    assert_eq!(
        seen, 4,
        "four queue consumers (enrich, session import, close, Datto sync)"
    );
}

#[test]
fn no_iam_statement_grants_a_wildcard_action_or_every_resource() {
    let template = Template::load();
    let mut statements = 0;
    for kind in ["AWS::IAM::Role", "AWS::IAM::ManagedPolicy"] {
        for (id, props) in template.resources_of_type(kind) {
            let mut documents = vec![&props["PolicyDocument"]];
            documents.extend(
                props["Policies"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .map(|p| &p["PolicyDocument"]),
            );
            for doc in documents.into_iter().filter(|d| !d.is_null()) {
                for st in doc["Statement"].as_sequence().expect("Statement list") {
                    statements += 1;
                    let actions: Vec<&Yaml> = match &st["Action"] {
                        Yaml::Sequence(s) => s.iter().collect(),
                        one => vec![one],
                    };
                    for a in actions {
                        let a = a.as_str().unwrap_or_default();
                        assert!(!a.contains('*'), "{id}: wildcard action {a}");
                    }
                    let resources: Vec<&Yaml> = match &st["Resource"] {
                        Yaml::Sequence(s) => s.iter().collect(),
                        one => vec![one],
                    };
                    for r in resources {
                        assert_ne!(
                            r.as_str(),
                            Some("*"),
                            "{id}: statement {:?} on every resource",
                            st["Sid"]
                        );
                    }
                }
            }
        }
    }
    assert!(statements > 8, "{statements} statements found");
    // The functions use their own roles, so SAM adds no managed policy with "*" resources.
    for (id, props) in template.resources_of_type("AWS::Serverless::Function") {
        assert!(
            props["Policies"].is_null(),
            "{id}: Policies would be ignored next to Role"
        );
    }
}

#[test]
fn the_outputs_name_what_the_admin_pastes_into_datto_and_beyondtrust() {
    let template = Template::load();
    let outputs = &template.document()["Outputs"];
    for key in [
        "ApiUrl",
        "DattoWebhookUrl",
        "BeyondTrustEventUrlBase",
        "InboundMailRecipient",
        "DashboardUrl",
    ] {
        assert!(!outputs[key]["Value"].is_null(), "output {key} missing");
    }
    let bt = tagged_target(&outputs["BeyondTrustEventUrlBase"]["Value"]).unwrap();
    assert!(
        bt.ends_with("/beyondtrust/events/"),
        "the event URL output stops before the token: {bt}"
    );
}

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("template.yaml is not YAML: {e}"))
}

fn resources(t: &Value) -> BTreeMap<String, Value> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
        .collect()
}

/// `(resource, attribute)` of a `!GetAtt` in either form.
fn get_att(v: &Value) -> Option<(String, String)> {
    if let Value::Tagged(t) = v {
        if t.tag == "!GetAtt" {
            let (r, a) = t.value.as_str()?.split_once('.')?;
            return Some((r.to_string(), a.to_string()));
        }
        return None;
    }
    let list = v.get("Fn::GetAtt")?.as_sequence()?;
    Some((list.first()?.as_str()?.to_string(), list.get(1)?.as_str()?.to_string()))
}

fn number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn of_type<'a>(res: &'a BTreeMap<String, Value>, ty: &str) -> Vec<(&'a String, &'a Value)> {
    res.iter().filter(|(_, r)| r["Type"].as_str() == Some(ty)).collect()
}

#[test]
fn every_queue_has_a_long_enough_visibility_timeout_a_dead_letter_queue_and_an_alarm() {
    let t = template();
    let res = resources(&t);
    let global_timeout = number(&t["Globals"]["Function"]["Timeout"]).unwrap_or(3);
    let queues = of_type(&res, "AWS::SQS::Queue");
    assert!(!queues.is_empty(), "no SQS queues in the template");

    // Which function consumes which queue, with its timeout.
    let mut consumers: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (name, f) in of_type(&res, "AWS::Serverless::Function") {
        let timeout = number(&f["Properties"]["Timeout"]).unwrap_or(global_timeout);
        for (_, event) in f["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() == Some("SQS") {
                let (queue, attr) = get_att(&event["Properties"]["Queue"])
                    .unwrap_or_else(|| panic!("{name}: SQS event without !GetAtt <queue>.Arn"));
                assert_eq!(attr, "Arn", "{name}");
                consumers.entry(queue).or_default().push((name.clone(), timeout));
            }
        }
    }

    // Dead-letter queues: redrive targets, and functions' async-invoke DLQs.
    let mut dlqs: BTreeMap<String, String> = BTreeMap::new();
    for (name, q) in &queues {
        let redrive = &q["Properties"]["RedrivePolicy"];
        if !redrive.is_null() {
            let (dlq, _) = get_att(&redrive["deadLetterTargetArn"])
                .unwrap_or_else(|| panic!("{name}: deadLetterTargetArn is no !GetAtt"));
            dlqs.insert(dlq, format!("redrive target of {name}"));
        }
    }
    for (name, f) in of_type(&res, "AWS::Serverless::Function") {
        let dl = &f["Properties"]["DeadLetterQueue"];
        if !dl.is_null() {
            let (dlq, _) = get_att(&dl["TargetArn"]).unwrap_or_else(|| panic!("{name}: DLQ target is no !GetAtt"));
            dlqs.insert(dlq, format!("async DLQ of {name}"));
        }
    }

    let mut checked = Vec::new();
    for (name, q) in &queues {
        let props = &q["Properties"];
        if let Some(why) = dlqs.get(*name) {
            assert!(
                !consumers.contains_key(*name),
                "{name} is a dead-letter queue ({why}) and must not be consumed"
            );
            continue;
        }
        let users = consumers
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is neither consumed by a function nor a dead-letter queue"));
        let visibility = number(&props["VisibilityTimeout"])
            .unwrap_or_else(|| panic!("{name}: no VisibilityTimeout (default 30 s)"));
        for (function, timeout) in users {
            assert!(
                visibility >= 6 * timeout,
                "{name}: visibility timeout {visibility} s < 6 x {function}'s timeout {timeout} s"
            );
        }
        let redrive = &props["RedrivePolicy"];
        assert!(!redrive.is_null(), "{name}: no RedrivePolicy (dead-letter queue)");
        // Session imports follow their own retry schedule (seven receives).
        let receives = if name.as_str() == "SessionImportQueue" {
            QueueName::SessionImport.max_receives()
        } else {
            MAX_RECEIVES
        };
        assert_eq!(
            number(&redrive["maxReceiveCount"]),
            Some(u64::from(receives)),
            "{name}: maxReceiveCount must be {receives}, as the local queue does"
        );
        checked.push(format!("{name} ({visibility} s)"));
    }

    let alarms = of_type(&res, "AWS::CloudWatch::Alarm");
    for (dlq, why) in &dlqs {
        assert!(res.contains_key(dlq), "{why} names {dlq}, which is no resource");
        let alarmed = alarms.iter().any(|(_, a)| {
            let p = &a["Properties"];
            p["Namespace"].as_str() == Some("AWS/SQS")
                && p["MetricName"].as_str() == Some("ApproximateNumberOfMessagesVisible")
                && p["Dimensions"].as_sequence().into_iter().flatten().any(|d| {
                    d["Name"].as_str() == Some("QueueName")
                        && get_att(&d["Value"]) == Some((dlq.clone(), "QueueName".to_string()))
                })
        });
        assert!(alarmed, "dead-letter queue {dlq} ({why}) has no depth alarm");
    }
    println!(
        "template: {} consumed queues checked [{}], {} dead-letter queues alarmed",
        checked.len(),
        checked.join(", "),
        dlqs.len()
    );
    assert!(checked.len() >= 3 && dlqs.len() >= 3, "{checked:?} {dlqs:?}");
}

#[test]
fn the_table_is_retained_protected_and_recoverable() {
    let res = resources(&template());
    let tables = of_type(&res, "AWS::DynamoDB::Table");
    assert!(!tables.is_empty(), "no DynamoDB table");
    for (name, table) in tables {
        assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"), "{name}");
        assert_eq!(table["UpdateReplacePolicy"].as_str(), Some("Retain"), "{name}");
        let p = &table["Properties"];
        assert_eq!(p["DeletionProtectionEnabled"].as_bool(), Some(true), "{name}");
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
            Some(true),
            "{name}"
        );
    }
}
