//! template.yaml checked against the workspace: every function is built, has events, its
//! own role and log group; queue triggers report partial batch failures; no IAM wildcard.

use deskbridge_tests::lambda_host::{function_names, workspace_root, Template};
use serde_norway::Value as Yaml;

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

#[test]
fn queue_triggers_report_partial_batch_failures_and_outlast_their_function() {
    let template = Template::load();
    let doc = template.document();
    let mut seen = 0;
    for (id, props) in template.resources_of_type("AWS::Serverless::Function") {
        for (_, event) in props["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() != Some("SQS") {
                continue;
            }
            seen += 1;
            let p = &event["Properties"];
            let types: Vec<&str> = p["FunctionResponseTypes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(Yaml::as_str)
                .collect();
            assert_eq!(types, vec!["ReportBatchItemFailures"], "{id}");
            let queue = tagged_target(&p["Queue"]).unwrap();
            let queue = queue.trim_end_matches(".Arn");
            let visibility = doc["Resources"][queue]["Properties"]["VisibilityTimeout"]
                .as_u64()
                .unwrap();
            let timeout = template
                .function_property(&id, "Timeout")
                .and_then(Yaml::as_u64)
                .unwrap();
            assert!(
                visibility >= 6 * timeout,
                "{queue}: {visibility} s < 6 x {id}'s {timeout} s"
            );
        }
    }
    assert_eq!(seen, 3, "three queue consumers");
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
