//! The mapping test runner: `mappings/tests/*.yaml` cases, each a body and the exact
//! operations it must produce. A failing case lists each differing field (its path,
//! what was expected, what was produced); a mistake in a test file is reported at its
//! file:line:column, and a case that cannot be read counts as a failure, never as
//! a case that silently was not there. A case's body is read as a webhook's would be
//! ([`SourceMapping::read`](crate::mapping::SourceMapping::read)), in the source's format.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::mapping::yaml_tree::{self, Entries, Node, Pos, SNode, get};
use crate::mapping::{MappingSet, ReadOptions, unknown_key_message};
use crate::source::Body;
use crate::webengage::rules::show_value;

/// The keys of a test file and of one case.
pub const FILE_KEYS: &[&str] = &["source", "cases"];
pub const CASE_KEYS: &[&str] = &["name", "body", "body_file", "content_type", "now", "expect"];

/// The outcome of every case in a tests folder.
#[derive(Debug, Default)]
pub struct TestReport {
    pub passed: usize,
    /// `file:line:col: case: explanation` (with the differing fields) per failing case;
    /// a file that cannot be read at all is one failure.
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

/// A case as read from its file: where it starts, and the case or what is wrong with it.
#[derive(Debug)]
pub struct ReadCase {
    pub name: String,
    pub at: Pos,
    pub case: Result<Case, String>,
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
        let shown = file.display();
        match read_cases(&file) {
            Err(e) => report.failures.push(format!("{shown}:{e}")),
            Ok(cases) => {
                for read in cases {
                    let at = format!("{shown}:{}:{}", read.at.line, read.at.column);
                    match read.case.and_then(|case| run_case(set, &case)) {
                        Ok(()) => report.passed += 1,
                        Err(e) => report.failures.push(format!("{at}: {}: {e}", read.name)),
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

/// Each differing field of expected against produced: its path (`[0].user.firstName`,
/// `[0]` being the first operation), what was expected and what was produced.
fn diff(expected: &[Value], produced: &[Value]) -> String {
    let mut lines = Vec::new();
    for i in 0..expected.len().max(produced.len()) {
        field_diff(
            &format!("[{i}]"),
            expected.get(i),
            produced.get(i),
            &mut lines,
        );
    }
    let mut out = format!(
        "{} field(s) differ (expected {} operation(s), produced {}):\n",
        lines.len(),
        expected.len(),
        produced.len()
    );
    for line in lines {
        out.push_str("    ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn field_diff(path: &str, expected: Option<&Value>, got: Option<&Value>, out: &mut Vec<String>) {
    match (expected, got) {
        (Some(Value::Object(e)), Some(Value::Object(g))) => {
            let extra = g.keys().filter(|k| !e.contains_key(*k));
            for key in e.keys().chain(extra) {
                field_diff(&format!("{path}.{key}"), e.get(key), g.get(key), out);
            }
        }
        (Some(Value::Array(e)), Some(Value::Array(g))) if e.len() == g.len() => {
            for (i, (e, g)) in e.iter().zip(g).enumerate() {
                field_diff(&format!("{path}[{i}]"), Some(e), Some(g), out);
            }
        }
        (e, g) if e == g => {}
        (e, g) => {
            let show = |v: Option<&Value>| v.map_or("(absent)".to_owned(), show_value);
            out.push(format!("{path}: expected {}, got {}", show(e), show(g)));
        }
    }
}

/// Reads a test file's cases; `body_file` is relative to the test file. `Err` (as
/// `line:col: message`) when the file as a whole cannot be read; a case with a mistake
/// is returned with its error, so it is counted.
pub fn read_cases(file: &Path) -> Result<Vec<ReadCase>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!(" {e}"))?;
    let root = yaml_tree::parse(&text)
        .map_err(|e| format!("{}:{}: {}", e.pos.line, e.pos.column, e.message))?;
    let at = |node: &SNode, message: &str| {
        let p = Pos::of(node);
        format!("{}:{}: {message}", p.line, p.column)
    };
    let top = root
        .value
        .as_map()
        .ok_or_else(|| at(&root, "a test file is a map with `source` and `cases`"))?;
    if let Some(message) = unknown_keys(top, FILE_KEYS, "a test file")
        .into_iter()
        .next()
    {
        return Err(message);
    }
    let source = get(top, "source")
        .and_then(|s| s.value.as_str())
        .ok_or_else(|| at(&root, "`source:` (the mapping's id) is missing"))?;
    let Some(cases) = get(top, "cases") else {
        return Err(at(&root, "`cases:` (a list of cases) is missing"));
    };
    let Node::Seq(items) = &cases.value else {
        return Err(at(cases, "`cases:` must be a list"));
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = item
                .value
                .as_map()
                .and_then(|m| get(m, "name"))
                .and_then(|n| n.value.as_str())
                .map_or_else(|| format!("case {}", i + 1), str::to_owned);
            ReadCase {
                case: read_case(source, dir, item, &name),
                name,
                at: Pos::of(item),
            }
        })
        .collect())
}

/// `line:col: unknown key ...` for each key of `entries` not in `allowed`.
fn unknown_keys(entries: &Entries, allowed: &[&str], section: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|(k, _)| !allowed.contains(&k.value.as_str()))
        .map(|(k, _)| {
            let p = Pos::of(k);
            format!(
                "{}:{}: {}",
                p.line,
                p.column,
                unknown_key_message(&k.value, allowed, section)
            )
        })
        .collect()
}

fn read_case(source: &str, dir: &Path, item: &SNode, name: &str) -> Result<Case, String> {
    // Mistakes inside a case name their own line and column (the file's name is
    // added by the runner).
    let at = |node: &SNode, message: String| {
        let p = Pos::of(node);
        format!("at {}:{}: {message}", p.line, p.column)
    };
    let entries = item
        .value
        .as_map()
        .ok_or_else(|| at(item, "a case is a map".to_owned()))?;
    let unknown = unknown_keys(entries, CASE_KEYS, "a case");
    if !unknown.is_empty() {
        return Err(unknown
            .iter()
            .map(|u| format!("at {u}"))
            .collect::<Vec<_>>()
            .join("; "));
    }
    let body = match (get(entries, "body"), get(entries, "body_file")) {
        (Some(b), None) => b
            .value
            .as_str()
            .ok_or_else(|| at(b, "`body` is text".to_owned()))?
            .as_bytes()
            .to_vec(),
        (None, Some(f)) => {
            let rel = f
                .value
                .as_str()
                .ok_or_else(|| at(f, "`body_file` is a path".to_owned()))?;
            std::fs::read(dir.join(rel)).map_err(|e| at(f, format!("cannot read {rel}: {e}")))?
        }
        _ => {
            return Err(at(
                item,
                "give exactly one of `body` and `body_file`".to_owned(),
            ));
        }
    };
    let content_type = match get(entries, "content_type") {
        Some(c) => Some(
            c.value
                .as_str()
                .ok_or_else(|| {
                    at(
                        c,
                        "`content_type` is text, e.g. application/json".to_owned(),
                    )
                })?
                .to_owned(),
        ),
        None => None,
    };
    let now = match get(entries, "now") {
        Some(n) => n
            .value
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| at(n, "`now` is an RFC 3339 time".to_owned()))?,
        None => jiff::Timestamp::now(),
    };
    let expect = match get(entries, "expect") {
        Some(e) => match e.value.to_json() {
            Value::Array(ops) => ops,
            _ => return Err(at(e, "`expect` is a list of operations".to_owned())),
        },
        None => {
            return Err(at(
                item,
                "`expect:` (the operations it must produce) is missing".to_owned(),
            ));
        }
    };
    Ok(Case {
        source: source.to_owned(),
        name: name.to_owned(),
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
    fn a_failing_case_lists_each_differing_field() {
        let d = diff(
            &[
                json!({"user": {"userId": "a", "attributes": {"tags": [1, 2], "same": 1, "gone": true}}}),
            ],
            &[
                json!({"user": {"userId": "b", "attributes": {"tags": [1, 3], "same": 1, "new": "x"}}}),
                json!({"event": {}}),
            ],
        );
        assert_eq!(
            d,
            "5 field(s) differ (expected 1 operation(s), produced 2):\n    \
             [0].user.userId: expected \"a\", got \"b\"\n    \
             [0].user.attributes.tags[1]: expected 2, got 3\n    \
             [0].user.attributes.gone: expected true, got (absent)\n    \
             [0].user.attributes.new: expected (absent), got \"x\"\n    \
             [1]: expected (absent), got {\"event\":{}}\n"
        );
    }

    /// A typo in one case fails that case at its line and column; the file's other
    /// cases still run and every case is counted.
    #[test]
    fn a_mistake_in_a_case_is_a_positioned_failure_and_the_others_still_run() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.yaml"),
            "source: { format: json, auth: none }\nrules:\n  - name: r\n    user: { userId: $.id }\n",
        )
        .unwrap();
        let set = MappingSet::load_dir(dir.path()).unwrap();
        let tests = dir.path().join("tests");
        std::fs::create_dir(&tests).unwrap();
        std::fs::write(
            tests.join("s.yaml"),
            "source: s\ncases:\n  - name: good\n    body: '{\"id\": \"a\"}'\n    expect: [{ user: { userId: a } }]\n  - name: typo\n    body: '{\"id\": \"a\"}'\n    expcet: []\n  - name: wrong\n    body: '{\"id\": \"b\"}'\n    expect: [{ user: { userId: a } }]\n",
        )
        .unwrap();
        let report = run_tests(&set, &tests);
        assert_eq!(report.passed, 1);
        assert_eq!(report.failures.len(), 2, "{:?}", report.failures);
        let file = tests.join("s.yaml").display().to_string();
        assert_eq!(
            report.failures[0],
            format!(
                "{file}:6:5: typo: at 8:5: unknown key `expcet` in a case; did you mean `expect`?"
            )
        );
        assert!(
            report.failures[1].starts_with(&format!("{file}:9:5: wrong: 1 field(s) differ")),
            "{}",
            report.failures[1]
        );
        assert!(report.failures[1].contains("[0].user.userId: expected \"a\", got \"b\""));

        std::fs::write(tests.join("s.yaml"), "source: s\ncasez: []\n").unwrap();
        let report = run_tests(&set, &tests);
        assert_eq!(
            report.failures,
            vec![format!(
                "{file}:2:1: unknown key `casez` in a test file; did you mean `cases`?"
            )]
        );
    }
}
