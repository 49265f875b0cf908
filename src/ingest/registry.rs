//! The mapping set currently serving, swapped whole on reload.
//!
//! A new set must load *and* pass the mapping tests in `<dir>/tests/*.yaml` before it
//! replaces the one serving: a change that loads but maps differently from what its
//! author promised in the tests is refused, and the old set keeps serving.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::mapping::{LoadErrors, MappingSet};
use crate::mapping_tools::testing::{TestReport, run_tests};

/// Holds the current mapping set; readers never block, a reload swaps atomically.
pub struct Registry {
    dir: PathBuf,
    current: ArcSwap<MappingSet>,
    /// Why the last reload was refused (or the startup tests failed), while the
    /// serving set keeps serving; shown by `/readyz` and the admin API.
    last_error: Mutex<Option<String>>,
}

/// Why a reload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadError {
    /// The set does not load: every error as `file:line:col: message`.
    Load(LoadErrors),
    /// The set loads but its mapping tests fail: each failing case with its diff.
    Tests(String),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Load(errors) => write!(f, "{errors}"),
            ReloadError::Tests(failures) => write!(f, "mapping tests failed:\n{failures}"),
        }
    }
}

impl std::error::Error for ReloadError {}

impl Registry {
    /// Loads `dir`; fails when the set does not load (the service must not start on a
    /// broken set). Failing mapping tests do not stop the start: there is no older set
    /// to fall back to, and refusing to start would stop webhooks from being stored at
    /// all. They are logged as an error and kept in `last_error` until a reload passes.
    pub fn load(dir: &Path) -> Result<Self, LoadErrors> {
        let set = MappingSet::load_dir(dir)?;
        let registry = Registry::from_set(dir, set);
        if let Err(failures) = check_tests(&registry.current(), dir) {
            tracing::error!(
                dir = %dir.display(),
                %failures,
                "MAPPING TESTS FAIL: serving these mappings anyway; fix the mappings or the tests"
            );
            registry.set_error(Some(format!(
                "mapping tests failed at startup (serving anyway):\n{failures}"
            )));
        }
        Ok(registry)
    }

    /// A registry holding a given set (tests, previews); no mapping test is run.
    pub fn from_set(dir: &Path, set: MappingSet) -> Self {
        Registry {
            dir: dir.to_path_buf(),
            current: ArcSwap::from_pointee(set),
            last_error: Mutex::new(None),
        }
    }

    pub fn current(&self) -> Arc<MappingSet> {
        self.current.load_full()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the folder again and runs its mapping tests; swaps only when the whole set
    /// loads and every test passes. On failure the old set keeps serving and the error
    /// is kept for `/readyz`.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let result = MappingSet::load_dir(&self.dir)
            .map_err(ReloadError::Load)
            .and_then(|set| {
                check_tests(&set, &self.dir).map_err(ReloadError::Tests)?;
                Ok(set)
            });
        match result {
            Ok(set) => {
                self.current.store(Arc::new(set));
                self.set_error(None);
                Ok(())
            }
            Err(e) => {
                self.set_error(Some(e.to_string()));
                Err(e)
            }
        }
    }

    pub fn last_error(&self) -> Option<String> {
        match self.last_error.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_error(&self, error: Option<String>) {
        // A poisoned lock only means another thread panicked mid-write of an Option: overwrite it.
        match self.last_error.lock() {
            Ok(mut guard) => *guard = error,
            Err(poisoned) => *poisoned.into_inner() = error,
        }
    }
}

/// Runs `<dir>/tests/*.yaml` against `set`; `Err` lists the failing cases. A panic in
/// a parser or the runner counts as a failure rather than killing the reload task.
fn check_tests(set: &MappingSet, dir: &Path) -> Result<(), String> {
    let tests = dir.join("tests");
    if !tests.is_dir() {
        return Ok(());
    }
    let report: TestReport =
        catch_unwind(AssertUnwindSafe(|| run_tests(set, &tests))).map_err(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            format!("the mapping tests panicked: {why}")
        })?;
    if report.ok() {
        return Ok(());
    }
    Err(format!(
        "{}\n{} passed, {} failed",
        report.failures.join("\n"),
        report.passed,
        report.failures.len()
    ))
}
