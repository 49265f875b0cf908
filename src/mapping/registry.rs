//! The mapping set currently serving, swapped whole on reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::{LoadErrors, MappingSet};

/// Holds the current mapping set; readers never block, a reload swaps atomically.
pub struct Registry {
    dir: PathBuf,
    current: ArcSwap<MappingSet>,
    /// Why the last reload was refused, while the previous set keeps serving.
    last_error: Mutex<Option<String>>,
}

impl Registry {
    /// Loads `dir`; fails when the set does not load (the service must not start on a broken set).
    pub fn load(dir: &Path) -> Result<Self, LoadErrors> {
        let set = MappingSet::load_dir(dir)?;
        Ok(Registry {
            dir: dir.to_path_buf(),
            current: ArcSwap::from_pointee(set),
            last_error: Mutex::new(None),
        })
    }

    /// A registry holding a given set (tests, previews).
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

    /// Loads the folder again; swaps only when the whole set loads. On failure the
    /// old set keeps serving and the error is kept for `/readyz`.
    pub fn reload(&self) -> Result<(), LoadErrors> {
        match MappingSet::load_dir(&self.dir) {
            Ok(set) => {
                self.current.store(Arc::new(set));
                *self.last_error.lock().expect("registry lock") = None;
                Ok(())
            }
            Err(errors) => {
                *self.last_error.lock().expect("registry lock") = Some(errors.to_string());
                Err(errors)
            }
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("registry lock").clone()
    }
}
