//! The mapping test runner: `mappings/tests/*.yaml` cases, each a body and the exact
//! operations it must produce, with a readable diff when they differ.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::mapping::model::{self, Node, get};
use crate::mapping::{MappingSet, SourceMapping};
use crate::source::{InboundRequest, parse_body};

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
                    match run_case(set, &case, parse) {
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

fn parse(mapping: &SourceMapping, body: &[u8]) -> Result<Vec<Value>, String> {
    let content_type = if body.trim_ascii_start().starts_with(b"<") {
        "text/xml"
    } else {
        "application/json"
    };
    let request = InboundRequest {
        headers: [("content-type".to_owned(), content_type.to_owned())].into(),
        query: String::new(),
        body: body.to_vec(),
    };
    parse_body(mapping.format, &request, mapping.records.as_ref())
        .map(|p| p.records)
        .map_err(|e| e.0)
}

/// Runs one case; `parse` turns the body into records (the source's parser).
pub fn run_case(
    set: &MappingSet,
    case: &Case,
    parse: impl Fn(&SourceMapping, &[u8]) -> Result<Vec<Value>, String>,
) -> Result<(), String> {
    let mapping = set
        .get(&case.source)
        .ok_or_else(|| format!("no mapping file for source `{}`", case.source))?;
    let records =
        parse(mapping, &case.body).map_err(|e| format!("the body does not parse: {e}"))?;
    let mut produced = Vec::new();
    for record in &records {
        let out = mapping.map_record(record, case.now);
        produced.extend(
            out.operations
                .iter()
                .map(|o| json!({ o.kind.as_str(): o.body })),
        );
    }
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
    let root = model::parse(&text)
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
        now,
        expect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example test files, for the cases whose bodies are JSON (the XML and
    /// LeadSquared parsers live in `source/` and are exercised by integration tests).
    #[test]
    fn example_test_files_match_the_example_mappings() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
        let set = MappingSet::load_dir(&root).expect("examples load");
        let mut ran = 0;
        for file in ["salesforce-flow.yaml", "leadsquared.yaml"] {
            for case in read_cases(&root.join("tests").join(file)).expect("cases") {
                let result = run_case(&set, &case, |_, body| {
                    serde_json::from_slice::<Value>(body)
                        .map(|v| vec![v])
                        .map_err(|e| e.to_string())
                });
                assert_eq!(result, Ok(()), "{file}: {}", case.name);
                ran += 1;
            }
        }
        assert_eq!(ran, 4);
        assert_eq!(
            read_cases(&root.join("tests/salesforce.yaml"))
                .expect("cases")
                .len(),
            2
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
