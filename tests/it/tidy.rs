//! Repository hygiene checked as ordinary tests: the invariants ARCHITECTURE.md states as
//! absences (a pure domain, wiring-only Lambda mains, every module documented).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_domain_imports_no_io_crate() {
    let mut files = Vec::new();
    rust_files(&root().join("shared/src/domain"), &mut files);
    assert!(!files.is_empty());
    let forbidden = [
        "aws_",
        "lambda_",
        "axum",
        "reqwest",
        "rusqlite",
        "hyper",
        "tokio",
        "http::",
        "tower",
        "quick_xml",
        "mail_parser",
    ];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim_start();
            if l.starts_with("use ") || l.starts_with("pub use ") || l.contains("::") && l.starts_with("extern crate") {
                for bad in forbidden {
                    let crate_path = l.trim_start_matches("pub ").trim_start_matches("use ");
                    assert!(
                        !crate_path.starts_with(bad),
                        "{}:{}: the domain must not import {bad}: {line}",
                        f.display(),
                        n + 1
                    );
                }
            }
        }
    }
}

#[test]
fn lambda_mains_are_wiring_only() {
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let main = entry.unwrap().path().join("src/main.rs");
        let text = std::fs::read_to_string(&main).unwrap();
        let lines = text.lines().count();
        assert!(
            lines <= 60,
            "{} has {lines} lines; move logic into the shared crate",
            main.display()
        );
        for marker in ["StatusCode", "match ", "if "] {
            assert!(
                !text.contains(marker),
                "{} contains `{marker}`: logic belongs in shared",
                main.display()
            );
        }
    }
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let mut files = Vec::new();
    for dir in ["shared/src", "infra/local/src", "functions", "bench/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.trim_start().starts_with("//!"),
            "{} does not start with a `//!` comment saying what it owns",
            f.display()
        );
    }
}

// ---- layers -------------------------------------------------------------------------------

/// The top modules of `shared/src`, highest layer first. A module may import only modules
/// of a later (lower) layer; modules of one layer must not import each other. See
/// ARCHITECTURE.md "Layers".
const LAYERS: &[&[&str]] = &[
    // Composition roots: build the ports and the `services::Context`, set up tracing, report
    // a failed Lambda start to the Runtime API.
    &["hosting", "telemetry", "cold_start"],
    &["http"],
    &["services"],
    &["jobs"],
    &["intake"],
    // Vendor clients, below the services and jobs that call them.
    &["datto", "beyondtrust"],
    &["store"],
    // Port implementations; only `hosting` (and the local host, tests) may name them.
    &["adapters"],
    // The one retry policy of outbound calls (vendor clients, the DynamoDB adapter).
    &["retry"],
    &["config"],
    &["error"],
    &["ports"],
    &["domain"],
];

/// Modules only the composition roots may import.
const ROOT_ONLY: &[&str] = &["adapters"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The module path of a file under `shared/src` (`http/api.rs` → `["http", "api"]`).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().to_string()).collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_string()),
    }
    parts
}

/// The code of a file without comments and without its `#[cfg(test)]` items (unit tests
/// may use anything).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    // Inside a test item: the brace depth so far, and whether its body has opened.
    let mut in_test: Option<(i32, bool)> = None;
    for (n, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if let Some((depth, opened)) = in_test.as_mut() {
            *depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            *opened |= l.contains('{');
            if (*opened && *depth <= 0) || (!*opened && l.ends_with(';')) {
                in_test = None;
            }
            continue;
        }
        if l.starts_with("#[cfg(test)]") {
            in_test = Some((0, false));
            continue;
        }
        if l.starts_with("//") {
            continue;
        }
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push((n + 1, code.to_string()));
    }
    out
}

/// The module paths a file refers to: `crate::a::b` and `crate::{a::b, c}` paths, and
/// `super::` paths resolved against the file's own module.
fn references(own: &[String], code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let text: String = bytes.iter().collect();
    let mut i = 0;
    while let Some(pos) = text[i..].find("crate::").map(|p| p + i) {
        let before = text[..pos].chars().last();
        i = pos + "crate::".len();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(vec![name]);
                }
            }
        } else {
            let path: Vec<String> = rest
                .split("::")
                .map(|s| {
                    s.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|s| !s.is_empty())
                .take(2)
                .collect();
            if !path.is_empty() {
                out.push(path);
            }
        }
    }
    let mut j = 0;
    while let Some(pos) = text[j..].find("super::").map(|p| p + j) {
        let before = text[..pos].chars().last();
        j = pos + "super::".len();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut base: Vec<String> = own.to_vec();
        base.pop();
        let mut rest = &text[j..];
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        let next: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !next.is_empty() && !rest.starts_with('{') {
            base.push(next);
        }
        out.push(base);
    }
    out
}

/// Items of the crate root that live in a module (`lib.rs` re-exports).
fn root_item(name: &str) -> &str {
    match name {
        "Error" | "Result" => "error",
        other => other,
    }
}

/// Every upward, sideways or root-only import between top modules, and every cycle
/// between the files of one top module, as messages.
fn layer_violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut problems = Vec::new();
    // (top module, sibling) → siblings it imports.
    let mut siblings: std::collections::BTreeMap<(String, String), std::collections::BTreeSet<String>> =
        Default::default();
    for f in &files {
        if f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let own = module_path(src, f);
        let Some(top) = own.first().cloned() else {
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in code_lines(&text) {
            for r in references(&own, &line) {
                let Some(target) = r.first().map(|t| root_item(t).to_string()) else {
                    continue;
                };
                let (Some(from), Some(to)) = (layer_of(&top), layer_of(&target)) else {
                    continue;
                };
                let at = format!("{}:{n}", f.strip_prefix(src).unwrap().display());
                if target == top {
                    if let (Some(mine), Some(theirs)) = (own.get(1), r.get(1)) {
                        if mine != theirs && f.file_name().is_some_and(|n| n != "mod.rs") {
                            siblings
                                .entry((top.clone(), mine.clone()))
                                .or_default()
                                .insert(theirs.clone());
                        }
                    }
                    continue;
                }
                if ROOT_ONLY.contains(&target.as_str()) && from != 0 {
                    problems.push(format!(
                        "{at}: `{top}` imports `{target}`, which only the composition roots may name"
                    ));
                } else if to < from {
                    problems.push(format!(
                        "{at}: `{top}` imports `{target}` of a higher layer: {}",
                        line.trim()
                    ));
                } else if to == from {
                    problems.push(format!(
                        "{at}: `{top}` imports `{target}` of its own layer: {}",
                        line.trim()
                    ));
                }
            }
        }
    }
    // Cycles among the files of one top module (a file's imports of its own parent are fine).
    for (top, start) in siblings.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, trail)) = stack.pop() {
            for next in siblings.get(&(top.clone(), at.clone())).into_iter().flatten() {
                if next == start {
                    problems.push(format!("cycle in `{top}`: {} -> {next}", trail.join(" -> ")));
                } else if !trail.contains(next) && siblings.contains_key(&(top.clone(), next.clone())) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[test]
fn layers_only_point_down_and_no_module_imports_in_a_cycle() {
    let src = root().join("shared/src");
    let mut tops: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.file_name().is_some_and(|n| n != "lib.rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    tops.sort();
    for t in &tops {
        assert!(layer_of(t).is_some(), "shared/src/{t} has no layer in LAYERS; add it");
    }
    let problems = layer_violations(&src);
    assert!(problems.is_empty(), "layer violations:\n{}", problems.join("\n"));
}

#[test]
fn the_layer_check_catches_an_upward_import_and_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "//! x\npub mod store;\npub mod http;\n");
    write("store/mod.rs", "//! x\nuse crate::http::Router;\nuse crate::Error;\n");
    write("http/mod.rs", "//! x\nmod a;\nmod b;\n");
    write(
        "http/a.rs",
        "//! x\nuse super::b::Thing;\n#[cfg(test)]\nmod tests {\n    use crate::hosting::X;\n}\nuse crate::hosting::Host;\n",
    );
    write(
        "http/b.rs",
        "//! x\nuse crate::http::a::Other;\nuse crate::store::Store;\n",
    );
    let problems = layer_violations(src);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("store/mod.rs:2: `store` imports `http` of a higher layer")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("cycle in `http`: a -> b -> a")),
        "{problems:?}"
    );
    // The test module's import is skipped, the line after it is checked.
    assert!(
        !problems.iter().any(|p| p.starts_with("http/a.rs:5")),
        "unit tests may import anything: {problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("http/a.rs:7: `http` imports `hosting` of a higher layer")),
        "{problems:?}"
    );
    assert!(!problems.iter().any(|p| p.contains("error")), "{problems:?}");
    assert_eq!(problems.len(), 4, "{problems:?}");
}

// ---- timeouts -------------------------------------------------------------------------------

/// The resources of template.yaml as `(logical id, its lines)`, and the Globals' lines.
fn template_resources() -> (Vec<String>, Vec<(String, Vec<String>)>) {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let mut globals = Vec::new();
    let mut resources: Vec<(String, Vec<String>)> = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = if line == "Globals:" {
                "globals"
            } else if line == "Resources:" {
                "resources"
            } else {
                ""
            };
            continue;
        }
        match section {
            "globals" => globals.push(line.to_string()),
            "resources" => {
                let is_resource = line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':');
                if is_resource && !line.trim_start().starts_with('#') {
                    resources.push((line.trim().trim_end_matches(':').to_string(), Vec::new()));
                } else if let Some((_, lines)) = resources.last_mut() {
                    lines.push(line.to_string());
                }
            }
            _ => {}
        }
    }
    (globals, resources)
}

/// The number after `key:` on a line of `lines` with exactly `indent` leading spaces.
fn number_at(lines: &[String], indent: usize, key: &str) -> Option<u64> {
    lines.iter().find_map(|l| {
        let spaces = l.len() - l.trim_start().len();
        let rest = l.trim_start().strip_prefix(key)?.strip_prefix(':')?;
        let value = rest.split('#').next()?.trim();
        (spaces == indent).then(|| value.parse().ok()).flatten()
    })
}

/// The time limit in code that each function's work runs under.
fn served_limit(function: &str) -> Option<std::time::Duration> {
    use deskbridge::ports::QueueName;
    use deskbridge::services::consumers::batch_timeout;
    Some(match function {
        "HelpdeskApiFunction" | "DattoWebhookFunction" | "BeyondTrustEventFunction" => {
            deskbridge::http::REQUEST_TIMEOUT
        }
        "SesInboundMailFunction" => deskbridge::services::alert_intake::SES_EVENT_TIMEOUT,
        "TicketClosePropagatorFunction" => batch_timeout(QueueName::TicketClosed),
        "AlertEnricherFunction" => batch_timeout(QueueName::AlertEnrich),
        "SessionImportFunction" => batch_timeout(QueueName::SessionImport),
        "ScheduledAlertSyncFunction" => batch_timeout(QueueName::DattoSync),
        _ => return None,
    })
}

#[test]
fn every_lambda_timeout_exceeds_the_time_limit_its_code_runs_under() {
    let (globals, resources) = template_resources();
    let default = number_at(&globals, 4, "Timeout").expect("Globals.Function.Timeout");
    let functions: Vec<&(String, Vec<String>)> = resources
        .iter()
        .filter(|(_, lines)| lines.iter().any(|l| l.trim() == "Type: AWS::Serverless::Function"))
        .collect();
    assert_eq!(
        functions.len(),
        8,
        "{:?}",
        functions.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (name, lines) in functions {
        let timeout = number_at(lines, 6, "Timeout").unwrap_or(default);
        let limit =
            served_limit(name).unwrap_or_else(|| panic!("{name}: say in served_limit which time limit it runs under"));
        assert!(
            timeout > limit.as_secs(),
            "{name}: Lambda Timeout {timeout} s must exceed the code's limit of {} s",
            limit.as_secs()
        );
        if lines.iter().any(|l| l.trim() == "Type: HttpApi") {
            assert!(
                timeout < 30,
                "{name}: API Gateway gives up at 30 s; Timeout is {timeout}"
            );
        }
        // A queue's visibility timeout must cover its consumer's Timeout (else Lambda
        // refuses the event source mapping, or a message is redelivered mid-batch).
        for queue in lines.iter().filter_map(|l| {
            l.trim()
                .strip_prefix("Queue: !GetAtt ")
                .and_then(|q| q.strip_suffix(".Arn"))
        }) {
            let (_, qlines) = resources.iter().find(|(n, _)| n == queue).expect("queue resource");
            let visibility = number_at(qlines, 6, "VisibilityTimeout").expect("VisibilityTimeout");
            assert!(
                visibility >= 6 * timeout,
                "{queue}: VisibilityTimeout {visibility} s should be at least 6 x {name}'s {timeout} s"
            );
        }
    }
}

// ---- handlers --------------------------------------------------------------------------------

#[test]
fn http_handlers_stay_short_parse_call_map() {
    let mut files = Vec::new();
    rust_files(&root().join("shared/src/http"), &mut files);
    files.push(root().join("infra/local/src/lib.rs"));
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if !(t.starts_with("async fn ") || t.starts_with("pub async fn ") || t.starts_with("pub(crate) async fn "))
            {
                continue;
            }
            let signature: String = lines[i..].iter().take_while(|s| !s.ends_with('{')).copied().collect();
            if !(signature.contains("State(") || lines[i].contains("State(")) {
                continue; // not an axum handler
            }
            let indent = l.len() - t.len();
            let end = lines[i..]
                .iter()
                .position(|e| e.len() - e.trim_start().len() == indent && e.trim() == "}")
                .unwrap_or_else(|| panic!("{}:{}: no end of fn", f.display(), i + 1));
            assert!(
                end < 40,
                "{}:{}: a handler of {} lines; move the work into a service",
                f.display(),
                i + 1,
                end + 1
            );
        }
    }
}
