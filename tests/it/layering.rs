//! The layering rule of ARCHITECTURE.md, kept by reading the source: a module may import the
//! rooms below it, never one above, only the command line speaks clap, and no two top-level
//! modules import each other, directly or round a longer circle. Where the sources are absent
//! (a packaged crate), the test says so and passes nothing off as checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// (files under this path, imports they may not name, why).
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "src/",
        &["crate::cli"],
        "only the command line imports the command line",
    ),
    (
        "src/",
        &["clap::", "use clap"],
        "only the command line defines flags and values",
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

/// A source file of the library: its path from the crate root and its text.
struct Source {
    relative: String,
    text: String,
}

impl Source {
    /// `src/report/csv.rs` -> `report`; `src/money.rs` -> `money`.
    fn top_module(&self) -> &str {
        let inside = self.relative.trim_start_matches("src/");
        let first = inside.split('/').next().unwrap_or(inside);
        first.trim_end_matches(".rs")
    }
}

/// Every library file outside the command line (`src/cli/`, `main.rs`) and `lib.rs`.
fn library_sources(root: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| Source {
            relative: file
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/"),
            text: std::fs::read_to_string(&file).unwrap(),
        })
        .filter(|s| !s.relative.starts_with("src/cli/"))
        .filter(|s| s.relative != "src/main.rs" && s.relative != "src/lib.rs")
        .collect()
}

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

/// The text of each line without its `//` comment (doc comments included).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(number, line)| (number + 1, line.split("//").next().unwrap_or("")))
}

/// Whether `code` names `path` as a whole path, not inside a longer name.
fn names(code: &str, path: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(path).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + path.len()..].chars().next();
        let glued_before = before.is_some_and(word);
        let glued_after = path.ends_with(word) && after.is_some_and(word);
        !glued_before && !glued_after
    })
}

/// The forbidden paths that `text` names outside comments, as "line: path".
fn violations(text: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (number, code) in code_lines(text) {
        for path in forbidden.iter().filter(|path| names(code, path)) {
            found.push(format!("{number}: {path}"));
        }
    }
    found
}

fn check_rules(sources: &[Source]) -> Vec<String> {
    let mut problems = Vec::new();
    for source in sources {
        for (under, forbidden, why) in RULES {
            if source.relative.starts_with(under) {
                for v in violations(&source.text, forbidden) {
                    problems.push(format!("{}:{v} ({why})", source.relative));
                }
            }
        }
    }
    problems
}

/// The top-level modules that `text` imports: `crate::name` and each `name` of a
/// `crate::{name, other::…}` group, outside comments.
fn imported_modules(text: &str) -> BTreeSet<String> {
    let code: String = code_lines(text)
        .map(|(_, c)| c)
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start_of_item = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start_of_item = true,
                    c if start_of_item && (c.is_alphanumeric() || c == '_') => {
                        found.insert(leading_name(&group[i..]));
                        start_of_item = false;
                    }
                    _ => {}
                }
            }
        } else if !rest.is_empty() {
            found.insert(leading_name(rest));
        }
    }
    found.retain(|name| !name.is_empty() && name != "self");
    found
}

fn leading_name(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Which top-level module imports which, with the first file and line that does.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn module_graph(sources: &[Source]) -> Graph {
    let mut graph = Graph::new();
    for source in sources {
        let from = source.top_module().to_string();
        for to in imported_modules(&source.text) {
            if to != from {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| source.relative.clone());
            }
        }
    }
    graph
}

/// The first import circle found, as "a -> b -> a" with the file behind each step.
fn first_circle(graph: &Graph) -> Option<String> {
    let mut done = BTreeSet::new();
    for start in graph.keys() {
        let mut path = Vec::new();
        if let Some(circle) = walk(graph, start, &mut path, &mut done) {
            return Some(circle);
        }
    }
    None
}

/// Depth first from `module`; `path` is the way here. A module already on the way closes a
/// circle; one in `done` was fully explored and leads to none.
fn walk(
    graph: &Graph,
    module: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<String> {
    if let Some(at) = path.iter().position(|m| m == module) {
        let mut circle = path[at..].to_vec();
        circle.push(module.to_string());
        let steps: Vec<String> = circle
            .windows(2)
            .map(|step| format!("{} -> {} ({})", step[0], step[1], graph[&step[0]][&step[1]]))
            .collect();
        return Some(steps.join(", "));
    }
    if done.contains(module) {
        return None;
    }
    path.push(module.to_string());
    for next in graph.get(module).into_iter().flat_map(BTreeMap::keys) {
        if let Some(circle) = walk(graph, next, path, done) {
            return Some(circle);
        }
    }
    path.pop();
    done.insert(module.to_string());
    None
}

fn sources_beside_the_test() -> Option<Vec<Source>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("src/cli").is_dir() {
        println!("skipped: no src/ beside the test binary");
        return None;
    }
    Some(library_sources(root))
}

#[test]
fn no_module_imports_one_above_it() {
    let Some(sources) = sources_beside_the_test() else {
        return;
    };
    let problems = check_rules(&sources);
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_import_circle_among_top_level_modules() {
    let Some(sources) = sources_beside_the_test() else {
        return;
    };
    let graph = module_graph(&sources);
    assert!(graph.contains_key("report"), "the graph saw no imports");
    if let Some(circle) = first_circle(&graph) {
        panic!("import circle: {circle}");
    }
}

#[test]
fn the_rule_sees_a_forbidden_import_and_ignores_comments() {
    let text = "use crate::ledger::Ledger;\n// crate::cli in a comment\nuse crate::cli::Failure;\nuse crate::client;\n#[derive(clap::Args)]\n/// clap's flags\nuse myclap::X;\n";
    assert_eq!(violations(text, &["crate::cli"]), ["3: crate::cli"]);
    assert_eq!(violations(text, &["crate::ledger"]), ["1: crate::ledger"]);
    assert_eq!(violations(text, &["clap::"]), ["5: clap::"]);
}

#[test]
fn imports_are_read_whole_and_grouped() {
    let text = "use crate::money::Cents;\nuse crate::{\n    ledger::{self, Ledger},\n    payout,\n};\n// crate::sim\nlet x = crate::report::Format::Csv;\n";
    let found: Vec<String> = imported_modules(text).into_iter().collect();
    assert_eq!(found, ["ledger", "money", "payout", "report"]);
}

#[test]
fn a_circle_is_reported_with_its_path() {
    let source = |relative: &str, text: &str| Source {
        relative: relative.into(),
        text: text.into(),
    };
    let sources = [
        source("src/a.rs", "use crate::b::B;"),
        source("src/b/mod.rs", "use crate::c::C;"),
        source("src/c.rs", "use crate::b::Other;\nuse crate::money::Cents;"),
        source("src/money.rs", ""),
    ];
    let graph = module_graph(&sources);
    assert_eq!(
        first_circle(&graph).as_deref(),
        Some("b -> c (src/b/mod.rs), c -> b (src/c.rs)")
    );
    let without: Vec<Source> = sources
        .into_iter()
        .filter(|s| s.relative != "src/c.rs")
        .collect();
    assert_eq!(first_circle(&module_graph(&without)), None);
}
