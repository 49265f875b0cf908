//! The mapping test runner: `mappings/tests/*.yaml` cases, each a body and the exact
//! operations it must produce, with a readable diff when they differ. A case's body is
//! read as a webhook's would be ([`SourceMapping::read`](crate::mapping::SourceMapping::read)),
//! in the source's format.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::mapping::yaml_tree::{self, Node, get};
use crate::mapping::{MappingSet, ReadOptions};
use crate::source::Body;

/// The outcome of every case in a tests folder.
#[derive(Debug, Default)]
pub struct TestReport {
    pub passed: usize,
    /// `file: case: explanation` (with a diff) per failing case.
    pub failures: Vec<String>,
}

impl TestReport {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One case, read from a test file.
#[derive(Debug, Clone)]
pub struct Case {
    pub source: String,
    pub name: String,
    pub body: Vec<u8>,
    /// The `Content-Type` the CRM would send (`content_type:`); LeadSquared bodies are
    /// read by it, other formats ignore it. Without one, LeadSquared bodies are sniffed.
    pub content_type: Option<String>,
    pub now: jiff::Timestamp,
    /// `[{"user": {...}}, {"event": {...}}, ...]`
    pub expect: Vec<Value>,
}

/// Runs every `*.yaml` case file in `dir` against `set`.
pub fn run_tests(set: &MappingSet, dir: &Path) -> TestReport {
    let mut report = TestReport::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")));
    files.sort();
    for file in files {
        match read_cases(&file) {
            Err(e) => report.failures.push(format!("{}: {e}", file.display())),
            Ok(cases) => {
                for case in cases {
                    match run_case(set, &case) {
                        Ok(()) => report.passed += 1,
                        Err(e) => {
                            report
                                .failures
                                .push(format!("{}: {}: {e}", file.display(), case.name))
                        }
                    }
                }
            }
        }
    }
    report
}

/// Runs one case: its body read as a webhook of its source would be.
pub fn run_case(set: &MappingSet, case: &Case) -> Result<(), String> {
    let mapping = set
        .get(&case.source)
        .ok_or_else(|| format!("no mapping file for source `{}`", case.source))?;
    let body = Body {
        content_type: case.content_type.as_deref(),
        bytes: &case.body,
    };
    let records = mapping
        .read(body, &ReadOptions::offline(case.now))
        .map_err(|e| format!("the body does not parse: {e}"))?;
    let produced: Vec<Value> = records
        .iter()
        .flat_map(|r| &r.mapped.operations)
        .map(|o| json!({ o.kind.as_str(): o.body }))
        .collect();
    if produced == case.expect {
        return Ok(());
    }
    Err(diff(&case.expect, &produced))
}

/// Expected against produced, one operation per line pair, marking the differing ones.
fn diff(expected: &[Value], produced: &[Value]) -> String {
    let mut out = String::from("operations differ (- expected, + produced):\n");
    for i in 0..expected.len().max(produced.len()) {
        let (e, p) = (expected.get(i), produced.get(i));
        if e == p {
            out.push_str(&format!(
                "  {}\n",
                e.map(Value::to_string).unwrap_or_default()
            ));
            continue;
        }
        if let Some(e) = e {
            out.push_str(&format!("- {e}\n"));
        }
        if let Some(p) = p {
            out.push_str(&format!("+ {p}\n"));
        }
    }
    out
}

/// Reads a test file's cases; `body_file` is relative to the test file.
pub fn read_cases(file: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let root = yaml_tree::parse(&text)
        .map_err(|e| format!("{}:{}: {}", e.pos.line, e.pos.column, e.message))?;
    let top = root
        .value
        .as_map()
        .ok_or("a test file is a map with `source` and `cases`")?;
    let source = get(top, "source")
        .and_then(|s| s.value.as_str())
        .ok_or("`source:` (the mapping's id) is missing")?;
    let Some(Node::Seq(items)) = get(top, "cases").map(|c| &c.value) else {
        return Err("`cases:` must be a list".to_owned());
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    items
        .iter()
        .map(|item| read_case(source, dir, &item.value))
        .collect()
}

fn read_case(source: &str, dir: &Path, node: &Node) -> Result<Case, String> {
    let entries = node.as_map().ok_or("a case is a map")?;
    let name = get(entries, "name")
        .and_then(|n| n.value.as_str())
        .unwrap_or("(unnamed)")
        .to_owned();
    let body = match (get(entries, "body"), get(entries, "body_file")) {
        (Some(b), None) => b
            .value
            .as_str()
            .ok_or(format!("{name}: `body` is text"))?
            .as_bytes()
            .to_vec(),
        (None, Some(f)) => {
            let rel = f
                .value
                .as_str()
                .ok_or(format!("{name}: `body_file` is a path"))?;
            std::fs::read(dir.join(rel)).map_err(|e| format!("{name}: cannot read {rel}: {e}"))?
        }
        _ => {
            return Err(format!(
                "{name}: give exactly one of `body` and `body_file`"
            ));
        }
    };
    let content_type = match get(entries, "content_type") {
        Some(c) => Some(
            c.value
                .as_str()
                .ok_or(format!(
                    "{name}: `content_type` is text, e.g. application/json"
                ))?
                .to_owned(),
        ),
        None => None,
    };
    let now = match get(entries, "now") {
        Some(n) => n
            .value
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or(format!("{name}: `now` is an RFC 3339 time"))?,
        None => jiff::Timestamp::now(),
    };
    let expect = match get(entries, "expect").map(|e| e.value.to_json()) {
        Some(Value::Array(ops)) => ops,
        _ => return Err(format!("{name}: `expect` is a list of operations")),
    };
    Ok(Case {
        source: source.to_owned(),
        name,
        body,
        content_type,
        now,
        expect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example test files, each case read in its source's format.
    #[test]
    fn example_test_files_match_the_example_mappings() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
        let set = MappingSet::load_dir(&root).expect("examples load");
        let report = run_tests(&set, &root.join("tests"));
        assert_eq!(report.failures, Vec::<String>::new());
        assert_eq!(report.passed, 6);
    }

    /// A LeadSquared body is read by its declared type, as the webhook would read it,
    /// not by a guess from its first byte.
    #[test]
    fn a_case_is_read_by_its_declared_content_type() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("lsq.yaml"),
            "source: { format: leadsquared, auth: none }\nrules:\n  - name: r\n    user: { userId: $.ProspectID }\n",
        )
        .unwrap();
        let set = MappingSet::load_dir(dir.path()).unwrap();
        let case = |content_type: Option<&str>| Case {
            source: "lsq".into(),
            name: "form".into(),
            body: b"ProspectID=p1".to_vec(),
            content_type: content_type.map(str::to_owned),
            now: jiff::Timestamp::UNIX_EPOCH,
            expect: vec![json!({"user": {"userId": "p1"}})],
        };
        assert_eq!(run_case(&set, &case(None)), Ok(()));
        assert_eq!(
            run_case(&set, &case(Some("application/x-www-form-urlencoded"))),
            Ok(())
        );
        let err = run_case(&set, &case(Some("application/json"))).unwrap_err();
        assert!(
            err.starts_with("the body does not parse: JSON is malformed"),
            "{err}"
        );
    }

    #[test]
    fn a_failing_case_shows_a_diff() {
        let d = diff(
            &[json!({"user": {"userId": "a"}})],
            &[json!({"user": {"userId": "b"}}), json!({"event": {}})],
        );
        assert_eq!(
            d,
            "operations differ (- expected, + produced):\n- {\"user\":{\"userId\":\"a\"}}\n+ {\"user\":{\"userId\":\"b\"}}\n+ {\"event\":{}}\n"
        );
    }
}
