//! Hot reload: a valid edit is served within seconds; a broken one, or one that fails
//! the mapping tests, is refused while the old set keeps serving.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use webengage_bridge::ingest::{Registry, ReloadError};
use webengage_bridge::mapping::MappingSet;

const LSQ: &str = "leadsquared.yaml";

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings")
}

/// A copy of the example mapping files; with `tests`, their tests folder too.
fn copy_examples(with_tests: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&examples(), dir.path(), with_tests);
    dir
}

fn copy_tree(from: &Path, to: &Path, with_dirs: bool) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() && with_dirs {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&path, &target, true);
        } else if path.is_file() {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{file} contains {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

/// The 1-based line of the first line containing `needle`.
fn line_of(dir: &Path, file: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(dir.join(file)).expect("read");
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle")
        + 1
}

/// Polls `cond` until it holds or 10 s pass (inotify and the debouncer take ~0.3 s).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn lead_event_name(set: &MappingSet) -> serde_json::Value {
    let record = json!({"ProspectID": "p1", "EmailAddress": "a@example.com"});
    let mapped = set
        .get("leadsquared")
        .expect("leadsquared source")
        .map_record(&record, jiff::Timestamp::UNIX_EPOCH);
    mapped
        .operations
        .iter()
        .find(|o| o.kind.as_str() == "event")
        .map(|o| o.body["eventName"].clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_edits_are_served_and_broken_ones_keep_the_old_set() {
    let dir = copy_examples(false);
    let registry = Arc::new(Registry::load(dir.path()).expect("examples load"));
    let shutdown = CancellationToken::new();
    webengage_bridge::ingest::watch::spawn_reloader(registry.clone(), shutdown.clone());
    assert_eq!(lead_event_name(&registry.current()), json!("Lead Synced"));

    edit(
        dir.path(),
        LSQ,
        "eventName: Lead Synced",
        "eventName: Lead Synced v2",
    );
    eventually("the valid edit is served", || {
        lead_event_name(&registry.current()) == json!("Lead Synced v2")
    })
    .await;
    assert_eq!(registry.last_error(), None);
    let good = registry.current();

    let line = line_of(dir.path(), LSQ, "eventName: Lead Synced v2");
    edit(
        dir.path(),
        LSQ,
        "eventName: Lead Synced v2",
        "eventNmae: Lead Synced v3",
    );
    eventually("the broken edit is refused", || {
        registry.last_error().is_some()
    })
    .await;
    let error = registry.last_error().unwrap_or_default();
    assert!(
        error.contains(&format!("{LSQ}:{line}:")) && error.contains("did you mean `eventName`"),
        "{error}"
    );
    assert!(
        Arc::ptr_eq(&good, &registry.current()),
        "the old set keeps serving"
    );

    edit(
        dir.path(),
        LSQ,
        "eventNmae: Lead Synced v3",
        "eventName: Lead Synced v4",
    );
    eventually("the fixed file is served", || {
        lead_event_name(&registry.current()) == json!("Lead Synced v4")
    })
    .await;
    assert_eq!(registry.last_error(), None);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_mapping_test_blocks_the_swap() {
    let dir = copy_examples(false);
    std::fs::create_dir(dir.path().join("tests")).expect("tests dir");
    let registry = Arc::new(Registry::load(dir.path()).expect("examples load"));
    assert_eq!(registry.last_error(), None);
    let serving = registry.current();
    let shutdown = CancellationToken::new();
    webengage_bridge::ingest::watch::spawn_reloader(registry.clone(), shutdown.clone());

    // A case that fails without needing a body parser: its source does not exist.
    std::fs::write(
        dir.path().join("tests/broken.yaml"),
        "source: nosuchsource\ncases:\n  - name: one\n    body: '{}'\n    expect: []\n",
    )
    .expect("write test");
    eventually("the failing test refuses the reload", || {
        registry.last_error().is_some()
    })
    .await;
    let error = registry.last_error().unwrap_or_default();
    assert!(error.starts_with("mapping tests failed"), "{error}");
    assert!(
        error.contains("broken.yaml:3:5: one: no mapping file for source `nosuchsource`"),
        "{error}"
    );
    assert!(error.ends_with("0 passed, 1 failed"), "{error}");
    assert!(Arc::ptr_eq(&serving, &registry.current()));

    std::fs::remove_file(dir.path().join("tests/broken.yaml")).expect("remove");
    eventually("the reload passes again", || {
        registry.last_error().is_none()
    })
    .await;
    assert!(!Arc::ptr_eq(&serving, &registry.current()), "swapped");
    shutdown.cancel();
}

#[test]
fn reload_reports_which_check_refused_it() {
    let dir = copy_examples(false);
    let registry = Registry::load(dir.path()).expect("examples load");
    edit(dir.path(), LSQ, "stop: true", "stop: maybe");
    match registry.reload() {
        Err(ReloadError::Load(errors)) => {
            assert!(
                errors
                    .to_string()
                    .contains("`stop` takes `true` or `false`")
            )
        }
        other => panic!("expected a load error, got {other:?}"),
    }
    edit(dir.path(), LSQ, "stop: maybe", "stop: true");
    assert_eq!(registry.reload(), Ok(()));
    assert_eq!(registry.last_error(), None);
}

#[test]
fn failing_tests_at_startup_are_kept_but_the_set_serves() {
    let dir = copy_examples(false);
    std::fs::create_dir(dir.path().join("tests")).expect("tests dir");
    std::fs::write(
        dir.path().join("tests/broken.yaml"),
        "source: nosuchsource\ncases:\n  - name: one\n    body: '{}'\n    expect: []\n",
    )
    .expect("write test");
    let registry = Registry::load(dir.path()).expect("starts anyway");
    assert_eq!(registry.current().len(), 3);
    let error = registry.last_error().unwrap_or_default();
    assert!(error.contains("at startup (serving anyway)"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_breaks_the_example_tests_is_refused() {
    let dir = copy_examples(true);
    let registry = Arc::new(Registry::load(dir.path()).expect("examples load"));
    assert_eq!(registry.last_error(), None, "the example tests pass");
    let serving = registry.current();
    let shutdown = CancellationToken::new();
    webengage_bridge::ingest::watch::spawn_reloader(registry.clone(), shutdown.clone());

    edit(
        dir.path(),
        LSQ,
        "firstName: $.FirstName",
        "firstName: $.LastName",
    );
    eventually("the change is refused", || registry.last_error().is_some()).await;
    let error = registry.last_error().unwrap_or_default();
    assert!(
        error.contains(".user.firstName: expected \"Rohan\", got \"Deshpande\""),
        "{error}"
    );
    assert!(Arc::ptr_eq(&serving, &registry.current()));

    edit(
        dir.path(),
        LSQ,
        "firstName: $.LastName",
        "firstName: $.FirstName  # restored",
    );
    eventually("the restored file is served", || {
        registry.last_error().is_none()
    })
    .await;
    assert!(!Arc::ptr_eq(&serving, &registry.current()));
    shutdown.cancel();
}
