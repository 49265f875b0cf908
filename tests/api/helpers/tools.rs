//! External programs some tests drive (chromedriver, promtool, hadolint, docker-compose):
//! `.ci/run` installs them. Missing under CI (`CI` set, and not `false` or `0`) is a
//! failure; elsewhere the test is skipped, loudly.

use std::path::PathBuf;

/// Whether this run is CI's, by the `CI` variable's value.
pub fn is_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The first of `names` on PATH; None (the test is skipped, loudly) when none is and
/// this is not CI; a panic when it is CI. `install` says how to get it.
pub fn required(names: &[&str], install: &str) -> Option<PathBuf> {
    let found = names.iter().find_map(|name| find_on_path(name));
    let ci = std::env::var("CI").ok();
    decide(found, ci.as_deref(), &names.join(" or "), install).unwrap_or_else(|e| panic!("{e}"))
}

/// Found: use it. Missing: skip, except under CI, where it is an error.
fn decide(
    found: Option<PathBuf>,
    ci: Option<&str>,
    what: &str,
    install: &str,
) -> Result<Option<PathBuf>, String> {
    match found {
        Some(path) => Ok(Some(path)),
        None if is_ci(ci) => Err(format!(
            "{what} is not installed, and CI needs it: {install} (.ci/run does)"
        )),
        None => {
            eprintln!(
                "\n!!!!!!!!\n!!! SKIPPING: {what} is not on PATH.\n!!! Install it: {install}\n!!!!!!!!\n"
            );
            Ok(None)
        }
    }
}

#[test]
fn ci_is_any_value_but_empty_false_or_0() {
    assert!(is_ci(Some("true")));
    assert!(is_ci(Some("1")));
    assert!(!is_ci(None));
    assert!(!is_ci(Some("")));
    assert!(!is_ci(Some("false")));
    assert!(!is_ci(Some("0")));
}

#[test]
fn a_missing_tool_fails_under_ci_and_skips_elsewhere() {
    let tool = Some(PathBuf::from("/usr/bin/tool"));
    assert_eq!(decide(tool.clone(), Some("true"), "t", "i"), Ok(tool));
    let error = decide(
        None,
        Some("true"),
        "chromedriver",
        "apt-get install chromium-driver",
    );
    assert!(
        error
            .unwrap_err()
            .contains("chromedriver is not installed, and CI needs it")
    );
    assert_eq!(decide(None, None, "t", "i"), Ok(None));
}
