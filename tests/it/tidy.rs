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
