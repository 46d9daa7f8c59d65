//! `template.yaml` read as data: every SQS queue a function consumes has a visibility
//! timeout of at least 6 × that function's timeout and a DLQ after 5 receives, every DLQ
//! has a CloudWatch alarm, and the table survives deletion and keeps point-in-time backups.
//!
//! CloudFormation's short tags (`!Ref X`, `!GetAtt X.Arn`) arrive as tagged YAML values;
//! their long forms (`Ref:`, `Fn::GetAtt: [X, Arn]`) are read too.

use std::collections::BTreeMap;

use deskbridge::ports::{QueueName, MAX_RECEIVES};
use serde_yaml_ng::Value;

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
