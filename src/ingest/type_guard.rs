//! WebEngage fixes an attribute's type with its first value and silently stops recording
//! the attribute when a later value has another type. The guard remembers the first type
//! this bridge sent for every attribute (in Postgres, shared by every process) and drops
//! a mismatching value with a warning before it is ever sent.
//!
//! The known types are bounded (WebEngage's 25 attributes of each type per scope, and
//! `webengage::types::MAX_EVENT_SCOPES` event names), and grow in place: a new
//! attribute costs an insert into the map, never a copy of it.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::PgPool;

use crate::mapping::IncomingRecord;
use crate::store::attribute_types;
use crate::webengage::rules::{AttributeType, AttributeTypes, TypeCheck};

/// The attribute types known so far. Loaded from Postgres on first use, so the service
/// can start while Postgres is down.
#[derive(Debug, Default)]
pub struct TypeGuard {
    known: RwLock<AttributeTypes>,
    loaded: AtomicBool,
}

impl TypeGuard {
    /// Loads every type recorded so far, once.
    pub async fn ensure_loaded(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        if !self.loaded.load(Ordering::Acquire) {
            let all = attribute_types::load_all(pool).await?;
            *self.write() = all;
            self.loaded.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Drops values whose type differs from the recorded one (with a warning on the
    /// record) and records the types of attributes seen for the first time.
    pub async fn check(
        &self,
        pool: &PgPool,
        records: &mut [IncomingRecord],
    ) -> Result<(), sqlx::Error> {
        self.ensure_loaded(pool).await?;
        let new = self.check_all(records);
        if new.is_empty() {
            return Ok(());
        }
        let inserted = attribute_types::record_new(pool, &new).await?;
        if inserted.len() < new.len() {
            // Another process (or request) recorded some of them first: its types win.
            // Load them and check again; what this check dropped stays dropped.
            let fresh = attribute_types::load_all(pool).await?;
            *self.write() = fresh;
            self.check_all(records);
            return Ok(());
        }
        let mut known = self.write();
        for t in inserted {
            known.insert(&t.scope, &t.name, t.json_type);
        }
        Ok(())
    }

    /// [`check`](Self::check) without the database, for a thread that cannot wait
    /// on it (an import's mapping threads, after `ensure_loaded`): true when the records
    /// brought no attribute seen for the first time. When false, `check` must still run
    /// on them, in order, to record the new attributes; as in `check`, what this check
    /// dropped stays dropped.
    pub fn check_known(&self, records: &mut [IncomingRecord]) -> bool {
        self.check_all(records).is_empty()
    }

    /// Checks the records in order under the read lock (no await while it is held);
    /// returns the attributes they introduce.
    fn check_all(&self, records: &mut [IncomingRecord]) -> Vec<AttributeType> {
        let known = self
            .known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut check = TypeCheck::new(&known);
        for record in records {
            let mapped = &mut record.mapped;
            check.check(&mut mapped.operations, &mut mapped.warnings);
        }
        check.into_new()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, AttributeTypes> {
        // A poisoned lock only means a panic elsewhere mid-insert of one entry.
        self.known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
