//! WebEngage fixes an attribute's type with its first value and silently stops recording
//! the attribute when a later value has another type. The guard remembers the first type
//! this bridge sent for every attribute (in Postgres, shared by every process) and drops
//! a mismatching value with a warning before it is ever sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use sqlx::PgPool;

use crate::store::attribute_types;
use crate::store::inbound::NewRecord;
use crate::webengage::rules::{AttributeType, AttributeTypes, check_types};

/// The attribute types known so far; checks run against a snapshot, without a lock held.
/// Loaded from Postgres on first use, so the service can start while Postgres is down.
#[derive(Debug, Default)]
pub struct TypeGuard {
    known: RwLock<Arc<AttributeTypes>>,
    loaded: AtomicBool,
}

impl TypeGuard {
    /// Loads every type recorded so far, once.
    async fn ensure_loaded(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        if !self.loaded.load(Ordering::Acquire) {
            self.replace(attribute_types::load_all(pool).await?);
            self.loaded.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<AttributeTypes> {
        self.known.read().map(|k| k.clone()).unwrap_or_default()
    }

    fn replace(&self, types: AttributeTypes) {
        if let Ok(mut known) = self.known.write() {
            *known = Arc::new(types);
        }
    }

    /// Drops values whose type differs from the recorded one (with a warning on the
    /// record) and records the types of attributes seen for the first time.
    pub async fn check(&self, pool: &PgPool, records: &mut [NewRecord]) -> Result<(), sqlx::Error> {
        self.ensure_loaded(pool).await?;
        let snapshot = self.snapshot();
        let (new, mut merged) = check_all(&snapshot, records);
        if new.is_empty() {
            return Ok(());
        }
        let inserted = attribute_types::record_new(pool, &new).await?;
        if inserted.len() < new.len() {
            // Another process recorded some of them first: its types win; check again.
            let fresh = attribute_types::load_all(pool).await?;
            let (_, rechecked) = check_all(&Arc::new(fresh.clone()), records);
            merged = rechecked.or(Some(fresh));
        }
        if let Some(types) = merged {
            self.replace(types);
        }
        Ok(())
    }
}

/// Checks records in order; a record sees the types introduced by the records before it,
/// so two records of one request cannot disagree. Returns the new types and, when there
/// are any, the snapshot extended with them.
fn check_all(
    snapshot: &Arc<AttributeTypes>,
    records: &mut [NewRecord],
) -> (Vec<AttributeType>, Option<AttributeTypes>) {
    let mut local: Option<AttributeTypes> = None;
    let mut all_new = Vec::new();
    for record in records {
        let known = local.as_ref().unwrap_or(snapshot);
        let new = check_types(known, &mut record.mapped);
        if new.is_empty() {
            continue;
        }
        let extended = local.get_or_insert_with(|| (**snapshot).clone());
        for t in &new {
            extended.insert(&t.scope, &t.name, t.json_type);
        }
        all_new.extend(new);
    }
    (all_new, local)
}
