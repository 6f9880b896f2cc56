//! The layering rule of ARCHITECTURE.md, kept by reading the source: a module may import the
//! rooms below it, never one above. Where the sources are absent (a packaged crate), the test
//! says so and passes nothing off as checked.

use std::path::{Path, PathBuf};

/// (files under this path, imports they may not name, why).
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "src/",
        &["crate::cli"],
        "only the command line imports the command line",
    ),
    (
        "src/ledger",
        FEATURES,
        "the ledger is below every feature module",
    ),
    (
        "src/dwolla",
        FEATURES,
        "the Dwolla client is below every feature module",
    ),
    ("src/money.rs", FEATURES, "money is a leaf"),
    ("src/payout.rs", FEATURES, "payout states are a leaf"),
    (
        "src/sim",
        &["crate::ledger", "crate::sender", "crate::tracking"],
        "the simulator is a black box to payrun",
    ),
];

const FEATURES: &[&str] = &[
    "crate::cli",
    "crate::ingest",
    "crate::sender",
    "crate::tracking",
    "crate::webhooks",
    "crate::report",
    "crate::onboard",
    "crate::drop_in",
    "crate::operate",
    "crate::plan",
    "crate::demo",
    "crate::inbox",
    "crate::sim",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The forbidden paths that `text` names outside comments, as "line: path".
fn violations(text: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for path in forbidden {
            let named = code.match_indices(path).any(|(at, _)| {
                let after = code[at + path.len()..].chars().next();
                !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if named {
                found.push(format!("{}: {path}", number + 1));
            }
        }
    }
    found
}

fn check(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut problems = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if relative.starts_with("src/cli/") || relative == "src/main.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (under, forbidden, why) in RULES {
            for v in violations(&text, forbidden) {
                if relative.starts_with(under) {
                    problems.push(format!("{relative}:{v} ({why})"));
                }
            }
        }
    }
    problems
}

#[test]
fn no_module_imports_one_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("src/cli").is_dir() {
        println!("skipped: no src/ beside the test binary");
        return;
    }
    let problems = check(root);
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_rule_sees_a_forbidden_import_and_ignores_comments() {
    let text = "use crate::ledger::Ledger;\n// crate::cli in a comment\nuse crate::cli::Failure;\nuse crate::client;\n";
    assert_eq!(violations(text, &["crate::cli"]), ["3: crate::cli"]);
    assert_eq!(violations(text, &["crate::ledger"]), ["1: crate::ledger"]);
}
