//! Mapping: YAML files that turn CRM records into WebEngage operations.
//!
//! A mapping *set* is every `*.yaml` in the mappings folder, one file per source.
//! Loading (`loader`) reads each file into a positioned tree (`yaml_tree`), checks
//! everything and compiles every JSONPath, template and regex once (`compile`);
//! evaluation (`eval`) then only walks the compiled plan. [`SourceMapping::read`] is the
//! one way a body becomes mapped records, for webhooks, previews and mapping tests.
//! The mapping set serving webhooks, and its reloads, belong to `ingest::Registry`.

mod auth_spec;
mod check;
mod compile;
mod condition;
mod datetime;
mod eval;
mod import_spec;
mod limits;
mod loader;
mod path;
mod phone;
mod read;
mod star;
mod template;
mod transform;
mod value;
pub mod yaml_tree;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::source::{AuthSpec, SourceFormat};
use crate::webengage::{DroppedField, Operation};

pub use check::unknown_key_message;
pub use import_spec::{ColumnType, ImportSpec};
pub use read::{IncomingRecord, ReadError, ReadOptions};

/// The keys, names and arguments the loader accepts, for tools that describe the
/// language (the editor schema): one list each, so a tool cannot drift from the loader.
pub mod vocabulary {
    pub mod auth {
        pub use crate::mapping::auth_spec::{
            BASIC_KEYS, HEADER_KEYS, HMAC_ENCODINGS, HMAC_KEYS, KEYS, QUERY_KEYS,
        };
    }
    pub mod compile {
        pub use crate::mapping::compile::{
            DEDUPE_KEYS, EVENT_KEYS, RULE_KEYS, SOURCE_KEYS, TOP_KEYS, TXN_KEYS, VERSION_KEYS,
        };
    }
    pub mod condition {
        pub use crate::mapping::condition::{KEYS, TESTS};
    }
    pub mod import {
        pub use crate::mapping::import_spec::{COLUMN_TYPES, KEYS};
    }
    pub mod star {
        pub use crate::mapping::star::{KEYS, RENAMES};
    }
    pub mod transform {
        pub use crate::mapping::transform::{
            DATETIME_ARGS, NAMES, NO_ARGS, PHONE_ARGS, REPLACE_ARGS,
        };
    }
    pub mod value {
        pub use crate::mapping::value::{ALL_KEYS, SOURCE_KEYS};
    }
}

/// Every source's mapping, loaded and checked as a whole.
#[derive(Debug, Default)]
pub struct MappingSet {
    sources: BTreeMap<String, Arc<SourceMapping>>,
}

impl MappingSet {
    /// Loads every mapping file in `dir`; all errors of all files are reported together.
    pub fn load_dir(dir: &Path) -> Result<MappingSet, LoadErrors> {
        loader::load_dir(dir)
    }

    pub fn get(&self, source_id: &str) -> Option<&Arc<SourceMapping>> {
        self.sources.get(source_id)
    }

    pub fn source_ids(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

/// One mapping file, compiled.
#[derive(Debug)]
pub struct SourceMapping {
    /// The file stem: `POST /webhooks/{id}`.
    pub id: String,
    pub file: PathBuf,
    /// SHA-256 (hex) of the file's bytes, recorded on every outbox row it produces.
    pub content_hash: String,
    pub format: SourceFormat,
    pub auth: AuthSpec,
    /// `source.records`: selects the records inside a JSON body.
    pub records: Option<jsonpath_rust::parser::model::JpQuery>,
    /// `source.import`: how rows of an exported file become records (`import`).
    pub import: ImportSpec,
    /// The compiled rules, dedupe key and version fence.
    pub plan: Plan,
}

/// What a mapping file compiles into besides its `source` settings. Opaque; `Plan::default()`
/// has no rules (every record is `ignored`).
#[derive(Debug, Default)]
pub struct Plan {
    rules: Vec<compile::Rule>,
    dedupe_key: Option<value::Template>,
    version: Option<(path::CompiledPath, path::CompiledPath)>,
}

impl SourceMapping {
    /// The key under which a record is deduplicated (`source.dedupe_key`, or the format's default).
    pub fn dedupe_key(&self, record: &Value) -> String {
        match self.plan.dedupe_key.as_ref().and_then(|t| t.render(record)) {
            Some(key) => key,
            None => crate::source::default_dedupe_key(self.format, record),
        }
    }

    /// The record's version for the stale fence (`source.version`), when configured and present.
    pub fn version_of(&self, record: &Value) -> Option<RecordVersion> {
        let (key, at) = self.plan.version.as_ref()?;
        let key = key
            .first(record)
            .and_then(transform::text_of)
            .filter(|k| !k.is_empty())?
            .into_owned();
        let at = at.first(record).and_then(transform::text_of)?;
        let ts = datetime::parse_datetime(&at, None, &jiff::tz::TimeZone::UTC).ok()?;
        // Fixed width (nanoseconds always written) so that string order is time order.
        let at = format!(
            "{}.{:09}Z",
            ts.strftime("%Y-%m-%dT%H:%M:%S"),
            ts.subsec_nanosecond()
        );
        Some(RecordVersion { key, at })
    }

    /// Runs every rule on one record. Never panics on data; problems become
    /// warnings or a failed status.
    pub fn map_record(&self, record: &Value, received_at: jiff::Timestamp) -> MappedRecord {
        eval::map_record(&self.plan.rules, record, received_at, None)
    }

    /// `map_record`, also saying where each output field came from (`preview --explain`).
    pub fn map_record_explained(
        &self,
        record: &Value,
        received_at: jiff::Timestamp,
    ) -> MappedRecord {
        let mut explain = Vec::new();
        let mut mapped =
            eval::map_record(&self.plan.rules, record, received_at, Some(&mut explain));
        mapped.provenance = explain;
        mapped
    }

    /// Compiles one mapping file's text (tests, previews); `file` is used in errors and
    /// its stem is the source id.
    pub fn from_yaml_str(file: &Path, text: &str) -> Result<SourceMapping, LoadErrors> {
        loader::compile_text(file, text.as_bytes())
    }
}

/// `source.version`: which CRM record a record is about, and as of when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordVersion {
    pub key: String,
    /// Normalised so that later versions compare greater (RFC 3339 UTC).
    pub at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    /// At least one rule applied and none failed.
    Mapped,
    /// No rule matched: stored, nothing sent.
    Ignored,
    /// A rule failed (a required field missing, …). Operations of rules that succeeded still go out.
    Failed,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Mapped => "mapped",
            RecordStatus::Ignored => "ignored",
            RecordStatus::Failed => "failed",
        }
    }
}

/// What mapping one record produced.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedRecord {
    pub status: RecordStatus,
    pub operations: Vec<Operation>,
    /// Fields dropped on the way (a phone that is not a phone, …), each naming rule, field and value.
    pub warnings: Vec<DroppedField>,
    /// The rules that failed (`status` is `Failed` when there is any).
    pub failures: Vec<RuleFailure>,
    /// Where each output field came from, when asked for (`preview --explain`); empty otherwise.
    pub provenance: Vec<Provenance>,
}

impl MappedRecord {
    /// Why rules failed, as one line: ``rule `a` failed: …; rule `b` failed: …``.
    pub fn error(&self) -> Option<String> {
        if self.failures.is_empty() {
            return None;
        }
        let lines: Vec<String> = self.failures.iter().map(ToString::to_string).collect();
        Some(lines.join("; "))
    }
}

/// A rule that could not produce its operations for a record (a required field
/// missing, …): its other rules still apply, the record is stored as `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFailure {
    /// The rule's name from the mapping file: the only part a metric may use as a label.
    pub rule: String,
    pub reason: String,
}

impl fmt::Display for RuleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule `{}` failed: {}", self.rule, self.reason)
    }
}

/// Where one output field's value came from (`mappings preview --explain`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Provenance {
    pub rule: String,
    /// `user.attributes.lead_score`, `event.eventData.stage`, …
    pub field: String,
    pub value: Value,
    /// The path that produced it (`$.Score | integer`), `literal`, `template "…"`,
    /// `default (…)`, `"*" copy of `mx_City``, or the fallback used.
    pub from: String,
}

/// One problem in a mapping file, positioned for an editor: `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Every problem found while loading a mapping set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_runtime;
#[cfg(test)]
mod tests_values;
