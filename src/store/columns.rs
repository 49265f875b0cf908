//! The columns of an ingest batch as its one insert statement (`inbound`) binds them.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use uuid::Uuid;

use super::inbound::{IngestCounts, IngestJob, Row};
use super::status::InboundStatus;
use super::storable::{self, json_text};
use crate::mapping::{MappedRecord, RecordStatus, RecordVersion, RuleFailure};
use crate::webengage::{Operation, OperationKind};

/// A batch's inbound rows in order, and the operations of the new ones, as the columns
/// its one insert statement binds. Built without the database, so that an import
/// builds its next batch's while Postgres stores the last; whether a row is stale is
/// bound apart, since the version fence decides it inside the transaction.
pub struct InsertColumns {
    pub(super) sources: Vec<String>,
    pub(super) keys: Vec<String>,
    /// What the mapping made of each row (a stale row is stored as `stale` instead).
    pub(super) statuses: Vec<InboundStatus>,
    pub(super) payloads: Vec<Option<String>>,
    pub(super) content_types: Vec<Option<String>>,
    pub(super) warnings: Vec<String>,
    pub(super) errors: Vec<Option<String>>,
    pub(super) hashes: Vec<String>,
    pub(super) request_ids: Vec<String>,
    pub(super) raw_bodies: Vec<Option<String>>,
    pub(super) trace_contexts: Vec<Option<String>>,
    /// Whether the row is the first of its source and dedupe key in the batch: the one
    /// inserted (a later one is a duplicate of it).
    pub(super) firsts: Vec<bool>,
    /// Each operation's row (1-based, as `WITH ORDINALITY` counts), for the firsts only.
    pub(super) op_rows: Vec<i64>,
    pub(super) ops: OperationColumns,
    /// How many rows each request has, in order, for its counts.
    pub(super) job_rows: Vec<usize>,
    /// Each row's version, for the stale fence.
    pub(super) versions: Vec<Option<RecordVersion>>,
}

impl InsertColumns {
    pub fn of(jobs: &[IngestJob<'_>]) -> Self {
        let job_rows: Vec<usize> = jobs.iter().map(|job| job.rows().count()).collect();
        let n = job_rows.iter().sum();
        let mut c = InsertColumns {
            sources: Vec::with_capacity(n),
            keys: Vec::with_capacity(n),
            statuses: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            content_types: Vec::with_capacity(n),
            warnings: Vec::with_capacity(n),
            errors: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
            request_ids: Vec::with_capacity(n),
            raw_bodies: Vec::with_capacity(n),
            trace_contexts: Vec::with_capacity(n),
            firsts: Vec::with_capacity(n),
            op_rows: Vec::new(),
            ops: OperationColumns::default(),
            job_rows,
            versions: Vec::with_capacity(n),
        };
        let mut seen = HashSet::with_capacity(n);
        let rows = jobs
            .iter()
            .flat_map(|job| job.rows().map(move |row| (job.meta, row)));
        for ((meta, row), ord) in rows.zip(1i64..) {
            let key = storable::key(row.dedupe_key()).into_owned();
            let first = seen.insert((meta.source, key.clone()));
            c.sources.push(meta.source.to_owned());
            c.keys.push(key);
            c.content_types.push(meta.content_type.map(str::to_owned));
            c.hashes.push(meta.mapping_hash.to_owned());
            c.request_ids.push(meta.request_id.to_owned());
            c.trace_contexts.push(meta.trace_context.map(str::to_owned));
            c.firsts.push(first);
            c.versions.push(row.version().cloned());
            match row {
                Row::Record(record) => {
                    c.statuses.push(record.mapped.status.into());
                    c.payloads.push(Some(json_text(&record.payload)));
                    c.raw_bodies.push(None);
                    c.warnings.push(warnings_json(&record.mapped.warnings));
                    c.errors.push(
                        record
                            .mapped
                            .error()
                            .map(|e| storable::text(&e).into_owned()),
                    );
                    // The insert drops the operations of duplicates and stale rows.
                    if first {
                        for op in &record.mapped.operations {
                            c.op_rows.push(ord);
                            c.ops.push(op);
                        }
                    }
                }
                Row::Malformed(body) => {
                    c.statuses.push(InboundStatus::Malformed);
                    c.payloads.push(None);
                    c.raw_bodies.push(Some(body.text.clone()));
                    c.warnings.push("[]".to_owned());
                    c.errors.push(Some(body.reason.clone()));
                }
            }
        }
        c
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// What the batch's statement writes that another batch's could also write: its
    /// dedupe keys, its version fences and its users.
    pub fn lock_keys(&self) -> LockKeys {
        fn hashed(item: impl Hash) -> u64 {
            let mut hasher = DefaultHasher::new();
            item.hash(&mut hasher);
            hasher.finish()
        }
        let mut keys = Vec::with_capacity(2 * self.len() + self.ops.users.len());
        for (i, (source, key)) in self.sources.iter().zip(&self.keys).enumerate() {
            keys.push(hashed((0u8, source, key)));
            if let Some(version) = &self.versions[i] {
                keys.push(hashed((1u8, source, &version.key)));
            }
        }
        keys.extend(self.ops.users.iter().flatten().map(|u| hashed((2u8, u))));
        keys.sort_unstable();
        keys.dedup();
        LockKeys(keys)
    }

    /// Row `i` alone (with its operations), as a batch of one request.
    pub(super) fn row(&self, i: usize) -> InsertColumns {
        let ord = i as i64 + 1;
        let mut ops = OperationColumns::default();
        for (j, _) in self.op_rows.iter().enumerate().filter(|(_, r)| **r == ord) {
            ops.request_ids.push(self.ops.request_ids[j]);
            ops.rules.push(self.ops.rules[j].clone());
            ops.kinds.push(self.ops.kinds[j]);
            ops.users.push(self.ops.users[j].clone());
            ops.bodies.push(self.ops.bodies[j].clone());
        }
        InsertColumns {
            sources: vec![self.sources[i].clone()],
            keys: vec![self.keys[i].clone()],
            statuses: vec![self.statuses[i]],
            payloads: vec![self.payloads[i].clone()],
            content_types: vec![self.content_types[i].clone()],
            warnings: vec![self.warnings[i].clone()],
            errors: vec![self.errors[i].clone()],
            hashes: vec![self.hashes[i].clone()],
            request_ids: vec![self.request_ids[i].clone()],
            raw_bodies: vec![self.raw_bodies[i].clone()],
            trace_contexts: vec![self.trace_contexts[i].clone()],
            firsts: vec![true],
            op_rows: vec![1; ops.request_ids.len()],
            ops,
            job_rows: vec![1],
            versions: vec![self.versions[i].clone()],
        }
    }

    /// Row `i` alone as `failed` because Postgres refused it: kept for support and
    /// re-mapping, nothing to send.
    pub(super) fn refused_row(&self, i: usize, e: &sqlx::Error) -> InsertColumns {
        let mut row = self.row(i);
        let failed = MappedRecord {
            status: RecordStatus::Failed,
            operations: Vec::new(),
            warnings: Vec::new(),
            failures: vec![RuleFailure {
                rule: "(storage)".to_owned(),
                reason: format!("Postgres refused the record: {e}"),
            }],
            provenance: Vec::new(),
        };
        row.statuses = vec![InboundStatus::Failed];
        row.warnings = vec!["[]".to_owned()];
        row.errors = vec![failed.error().map(|e| storable::text(&e).into_owned())];
        row.versions = vec![None];
        row.op_rows.clear();
        row.ops = OperationColumns::default();
        row
    }

    /// Each request's counts: a record not inserted is a duplicate; an inserted one
    /// counts by what its mapping made of it.
    pub(super) fn count_outcomes(
        &self,
        stale: &[bool],
        inserted: &HashSet<usize>,
    ) -> Vec<IngestCounts> {
        let mut counts = vec![IngestCounts::default(); self.job_rows.len()];
        let mut index = 0..;
        for (job_counts, &rows) in counts.iter_mut().zip(&self.job_rows) {
            for i in index.by_ref().take(rows) {
                if !inserted.contains(&i) {
                    job_counts.duplicates += 1;
                } else if stale[i] {
                    job_counts.stale += 1;
                } else {
                    match self.statuses[i] {
                        InboundStatus::Mapped => job_counts.accepted += 1,
                        InboundStatus::Ignored => job_counts.ignored += 1,
                        InboundStatus::Failed => job_counts.failed += 1,
                        _ => {}
                    }
                }
            }
        }
        counts
    }
}

/// A batch's [`InsertColumns::lock_keys`], hashed and sorted. Batches whose keys are disjoint
/// neither wait for each other's row locks nor decide anything from each other's rows
/// (a dedupe, a fence, a user's head); a hash collision only makes two batches look
/// related.
pub struct LockKeys(Vec<u64>);

impl LockKeys {
    pub fn overlap(&self, other: &LockKeys) -> bool {
        // Both sorted: one walk of the two.
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            match x.cmp(y) {
                std::cmp::Ordering::Less => _ = a.next(),
                std::cmp::Ordering::Greater => _ = b.next(),
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }
}

/// The outbox columns of some operations, as arrays for `UNNEST`: each operation gets
/// a fresh idempotency id (a UUIDv7) and its body as stored JSON text.
#[derive(Default)]
pub(super) struct OperationColumns {
    pub(super) request_ids: Vec<Uuid>,
    pub(super) rules: Vec<String>,
    pub(super) kinds: Vec<OperationKind>,
    pub(super) users: Vec<Option<String>>,
    pub(super) bodies: Vec<String>,
}

impl OperationColumns {
    pub(super) fn of<'a>(operations: impl Iterator<Item = &'a Operation>) -> Self {
        let mut columns = OperationColumns::default();
        for op in operations {
            columns.push(op);
        }
        columns
    }

    fn push(&mut self, op: &Operation) {
        self.request_ids.push(Uuid::now_v7());
        self.rules.push(op.rule.clone());
        self.kinds.push(op.kind);
        self.users
            .push(op.user_key().map(|u| storable::key(&u).into_owned()));
        self.bodies.push(json_text(&op.body));
    }
}

/// Warnings as the JSON array of their lines, storable as `jsonb`.
pub(super) fn warnings_json(warnings: &[crate::webengage::DroppedField]) -> String {
    if warnings.is_empty() {
        return "[]".to_owned();
    }
    json_text(&serde_json::json!(warnings))
}

#[cfg(test)]
mod tests {
    use super::LockKeys;

    #[test]
    fn lock_keys_overlap_when_any_key_is_in_both() {
        let odd = LockKeys(vec![1, 3, 5, 7]);
        assert!(!odd.overlap(&LockKeys(vec![0, 2, 4, 6, 8])));
        assert!(!odd.overlap(&LockKeys(Vec::new())));
        assert!(odd.overlap(&LockKeys(vec![7])), "the last of both");
        assert!(odd.overlap(&LockKeys(vec![0, 1])), "the first of one");
        assert!(!LockKeys(vec![2, 9]).overlap(&odd));
        assert!(LockKeys(vec![4, 5, 6]).overlap(&odd));
    }
}
