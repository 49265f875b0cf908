//! `mappings test`, `mappings schema` and `mappings preview --explain`, run as the binary.

use std::path::Path;
use std::process::Command;

fn bridge(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_webengage-bridge"))
        .args(args)
        .env_remove("BRIDGE_MAPPINGS_DIR")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

/// A copy of the example mappings whose tests folder holds only `tests`.
fn mappings_with_tests(tests: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(examples()).expect("examples") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    std::fs::create_dir(dir.path().join("tests")).expect("tests dir");
    for (name, text) in tests {
        std::fs::write(dir.path().join("tests").join(name), text).expect("write test");
    }
    dir
}

#[test]
fn schema_is_json_naming_the_loader_vocabulary() {
    let (code, out, err) = bridge(&["mappings", "schema"]);
    assert_eq!(code, 0, "{err}");
    let schema: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert!(schema["definitions"]["transform"].is_object());
    assert!(out.contains("\"salesforce-outbound\""));
}

#[test]
fn a_failing_case_is_printed_and_exits_1() {
    let dir = mappings_with_tests(&[(
        "broken.yaml",
        "source: nosuchsource\ncases:\n  - name: one\n    body: '{}'\n    expect: []\n",
    )]);
    let d = dir.path().to_str().expect("utf-8 path");
    let (code, out, _) = bridge(&["mappings", "test", "--dir", d]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL "), "{out}");
    assert!(
        out.contains("no mapping file for source `nosuchsource`"),
        "{out}"
    );
    assert!(out.ends_with("0 passed, 1 failed\n"), "{out}");
}

#[test]
fn a_set_that_does_not_load_runs_no_test() {
    let dir = mappings_with_tests(&[]);
    std::fs::write(dir.path().join("bad.yaml"), "source: {}\n").expect("write");
    let d = dir.path().to_str().expect("utf-8 path");
    let (code, out, err) = bridge(&["mappings", "test", "--dir", d]);
    assert_eq!(code, 1);
    assert!(out.contains("bad.yaml:1:"), "{out}");
    assert!(err.contains("no test ran"), "{err}");
}

#[test]
fn the_example_tests_pass_and_a_changed_expectation_shows_a_diff() {
    let e = examples();
    let (code, out, err) = bridge(&["mappings", "test", "--dir", e.to_str().expect("path")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("6 passed, 0 failed\n"), "{out}");

    let lsq = std::fs::read_to_string(e.join("tests/leadsquared.yaml")).expect("read");
    let changed = lsq.replacen("firstName: Rohan", "firstName: Rahul", 1);
    let dir = mappings_with_tests(&[("leadsquared.yaml", &changed)]);
    copy_fixtures(dir.path());
    let (code, out, _) = bridge(&[
        "mappings",
        "test",
        "--dir",
        dir.path().to_str().expect("path"),
    ]);
    assert_eq!(code, 1, "{out}");
    // The differing field by its path, not two long JSON lines.
    assert!(
        out.contains("[0].user.firstName: expected \"Rahul\", got \"Rohan\""),
        "{out}"
    );
    assert!(
        out.lines().all(|l| l.len() < 200),
        "no long JSON lines: {out}"
    );
    assert!(out.contains("passed, 1 failed"), "{out}");
}

/// A typo in a test file is reported at its file:line:col, and the file's other
/// cases are still run and counted.
#[test]
fn a_mistake_in_a_test_file_is_positioned_and_counted() {
    let lsq = std::fs::read_to_string(examples().join("tests/leadsquared.yaml")).expect("read");
    let cases = lsq.matches("- name:").count();
    assert!(cases >= 2, "the example has several cases");
    let line = lsq
        .lines()
        .position(|l| l.trim_start().starts_with("expect:"))
        .expect("an expect line")
        + 1;
    let column = lsq
        .lines()
        .nth(line - 1)
        .expect("line")
        .find("expect")
        .expect("key")
        + 1;
    let typo = lsq.replacen("expect:", "expcet:", 1);
    let dir = mappings_with_tests(&[("leadsquared.yaml", &typo)]);
    copy_fixtures(dir.path());
    let (code, out, _) = bridge(&[
        "mappings",
        "test",
        "--dir",
        dir.path().to_str().expect("path"),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "at {line}:{column}: unknown key `expcet` in a case; did you mean `expect`?"
        )),
        "{out}"
    );
    assert!(out.contains("leadsquared.yaml:"), "{out}");
    assert!(
        out.ends_with(&format!("{} passed, 1 failed\n", cases - 1)),
        "{out}"
    );
}

#[test]
fn preview_explain_names_each_fields_origin() {
    let e = examples();
    let body = e.join("tests/fixtures/lsq_lead_create.json");
    let (code, out, err) = bridge(&[
        "mappings",
        "preview",
        "--source",
        "leadsquared",
        "--dir",
        e.to_str().expect("path"),
        "--explain",
        body.to_str().expect("path"),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let explain = v["records"][0]["explain"].as_array().expect("explain list");
    assert!(explain.iter().any(|p| p["field"] == "user.firstName"
        && p["from"] == "$.FirstName"
        && p["rule"] == "lead-profile"));
}

fn copy_fixtures(dir: &Path) {
    let to = dir.join("tests/fixtures");
    std::fs::create_dir_all(&to).expect("fixtures dir");
    for entry in std::fs::read_dir(examples().join("tests/fixtures")).expect("fixtures") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
    }
}
