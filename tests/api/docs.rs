//! The documentation a user reads points only at files the repository has.

use std::path::{Path, PathBuf};

fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    for dir in ["docs", "mappings/tests/fixtures"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("docs dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
}

/// Relative link targets of `[text](target)` and `![alt](target)`, without `#anchor`.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or_default();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            links.push(target.to_owned());
        }
    }
    links
}

#[test]
fn every_relative_link_in_the_docs_names_a_file_that_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in markdown_files(root) {
        let text = std::fs::read_to_string(&file).expect("markdown");
        for link in relative_links(&text) {
            checked += 1;
            let target = file.parent().expect("dir").join(&link);
            if !target.exists() {
                missing.push(format!("{}: {link}", file.display()));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the parser right?"
    );
    assert!(
        missing.is_empty(),
        "links to missing files:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_readme_stays_a_first_hour_page() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let lines = readme.lines().count();
    assert!(
        lines < 120,
        "README.md has {lines} lines: move detail to docs/"
    );
    let first_block: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take(2)
        .collect();
    assert!(
        first_block[0].starts_with("cargo run --release -- serve"),
        "{first_block:?}"
    );
    assert!(first_block[1].starts_with("cargo test"), "{first_block:?}");
}

/// The bench scripts read fixtures and helpers by their paths in the repository; a
/// moved file broke `bench/run.sh` and `bench/hostile.py` without a test noticing.
#[test]
fn every_repository_path_in_the_bench_scripts_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = regex::Regex::new(
        r"\b(?:mappings|tests|bench|examples|deploy)/[A-Za-z0-9_./-]+\.(?:json|xml|lua|py|sh|yaml|yml|csv)\b",
    )
    .unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("bench")).unwrap() {
        let script = entry.unwrap().path();
        let text = std::fs::read_to_string(&script).unwrap();
        for found in path.find_iter(&text) {
            if !root.join(found.as_str()).exists() {
                missing.push(format!("{}: {}", script.display(), found.as_str()));
            }
        }
    }
    assert!(missing.is_empty(), "missing:\n{}", missing.join("\n"));
}
