//! The layout rules of docs/architecture.md, checked: every SQL statement in
//! `src/store/`, no import cycle between top-level modules, modules small enough to read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// The top-level module a file belongs to (`src/store/outbox.rs` → `store`).
fn top_module(path: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let first = path
        .strip_prefix(&src)
        .expect("under src")
        .components()
        .next()
        .expect("a part");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned()
}

/// The code outside `#[cfg(test)]` modules and test files.
fn production_code<'a>(path: &Path, text: &'a str) -> &'a str {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name == "tests.rs" || name.ends_with("_tests.rs") || name == "proptests.rs" {
        return "";
    }
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

#[test]
fn every_sql_statement_is_in_the_store() {
    let outside: Vec<String> = sources()
        .iter()
        .filter(|(path, _)| top_module(path) != "store")
        .filter(|(_, text)| {
            ["sqlx::query", "query_as(", "query_scalar("]
                .iter()
                .any(|call| text.contains(call))
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(outside.is_empty(), "SQL outside src/store/: {outside:?}");
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let files = sources();
    let modules: BTreeSet<String> = files.iter().map(|(p, _)| top_module(p)).collect();
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &files {
        let from = top_module(path);
        for (at, _) in production_code(path, text).match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let to: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if to != from && modules.contains(&to) {
                uses.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // Depth-first search for a path back to where it started.
    fn cycle_from(
        start: &str,
        at: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        for next in uses.get(at).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if !path.contains(next) {
                path.push(next.clone());
                if let Some(found) = cycle_from(start, next, uses, path) {
                    return Some(found);
                }
                path.pop();
            }
        }
        None
    }
    for module in &modules {
        let cycle = cycle_from(module, module, &uses, &mut vec![module.clone()]);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap_or_default().join(" -> ")
        );
    }
    // The check sees the imports: ingest uses the store.
    assert!(uses["ingest"].contains("store"), "{uses:?}");
}

#[test]
fn no_module_is_longer_than_six_hundred_lines() {
    let long: Vec<String> = sources()
        .iter()
        .map(|(path, text)| (path, text.lines().count()))
        .filter(|(_, lines)| *lines > 600)
        .map(|(path, lines)| format!("{}: {lines}", path.display()))
        .collect();
    assert!(long.is_empty(), "split these modules: {long:?}");
}
