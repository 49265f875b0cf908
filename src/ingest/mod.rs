//! A webhook from authenticated bytes to the answer. The HTTP handler only adapts: it
//! asks [`Ingest::admit`] about the request's head (source, credentials outside the
//! body) before reading the body, then hands the body to [`Ingest::receive`] and writes
//! the [`Answer`] or the [`IngestError`] it gets back.
//!
//! `receive` checks an HMAC over the raw bytes, reads the body (`reader`: parse in the
//! source's format, the Salesforce organization id, the record cap, mapping), checks
//! attribute types (`type_guard`), and commits through the group commit, or appends to
//! the spool when Postgres is unavailable or a spool backlog is waiting. Each step runs
//! once per request. Also here: the mapping registry and its watcher.

use std::sync::Arc;

use sqlx::PgPool;
use tracing::Instrument;

use crate::mapping::{ReadError, ReadOptions, SourceMapping};
use crate::source::{AuthError, InboundRequest, ParseError, SourceFormat, credentials};
use crate::store::inbound::{Content, MalformedBody, RequestMeta};
use crate::store::storable::is_data_error;
use group_commit::GroupCommit;
use reader::Reader;
use spool::{Spool, SpoolEntry};

mod answer;
pub mod group_commit;
mod reader;
mod registry;
pub mod spool;
mod type_guard;
pub mod watch;

use answer::Outcome;
pub use answer::{Answer, LeadSquaredAnswer};
pub use reader::OverBudget;
pub use registry::{Registry, ReloadError};
pub use type_guard::TypeGuard;

/// Everything a webhook needs, shared by the HTTP workers; cheap to clone. Each HTTP
/// worker replaces `committer` with its own (`startup`).
#[derive(Clone)]
pub struct Ingest {
    pub committer: GroupCommit,
    pub types: Arc<TypeGuard>,
    pub registry: Arc<Registry>,
    /// `BRIDGE_SPOOL_DIR`: where webhooks wait while Postgres is down.
    pub spool: Option<Arc<Spool>>,
    /// `BRIDGE_MAX_RECORDS`: records one JSON or LeadSquared request may carry.
    pub max_records: usize,
    reader: Reader,
}

/// A request whose source exists and whose head carries the source's credentials.
pub struct Admitted {
    mapping: Arc<SourceMapping>,
}

/// Why a webhook was not stored, or not stored as sent. Each variant is one answer
/// (`http::error` maps them once).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no mapping file defines the source `{0}`")]
    UnknownSource(String),
    #[error("authentication failed: {0}")]
    Unauthorized(#[from] AuthError),
    /// The body cannot be parsed; `kept` when it was stored as a `malformed` record
    /// (not when the only credential is the organization id inside it).
    #[error("{reason}")]
    Malformed { reason: String, kept: bool },
    #[error(
        "the body holds more than {limit} records; send at most {limit} per request (BRIDGE_MAX_RECORDS)"
    )]
    TooManyRecords { limit: usize },
    /// Postgres cannot be reached (and there is no spool for this format).
    #[error("the database is unavailable; retry later")]
    Unavailable,
    /// The same for Salesforce, which reads only SOAP: a fault makes it retry.
    #[error("the database is unavailable; retry later")]
    SoapFault,
    /// Reading the body took longer than its budget.
    #[error(transparent)]
    Busy(#[from] OverBudget),
    /// Postgres refused a request whose records were each made storable: a bug.
    #[error("the request could not be stored")]
    Refused,
}

/// How committing a request failed.
enum CommitError {
    Unavailable(sqlx::Error),
    Refused(sqlx::Error),
}

impl From<sqlx::Error> for CommitError {
    fn from(e: sqlx::Error) -> Self {
        if is_data_error(&e) {
            CommitError::Refused(e)
        } else {
            CommitError::Unavailable(e)
        }
    }
}

impl Ingest {
    pub fn new(
        committer: GroupCommit,
        registry: Arc<Registry>,
        spool: Option<Arc<Spool>>,
        max_records: usize,
    ) -> Self {
        Ingest {
            committer,
            types: Arc::new(TypeGuard::default()),
            registry,
            spool,
            max_records,
            reader: Reader::default(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        self.committer.pool()
    }

    /// Whether `source_id` is served (`HEAD /webhooks/{source}`).
    pub fn knows(&self, source_id: &str) -> bool {
        self.registry.current().get(source_id).is_some()
    }

    /// Finds the source and checks the credentials carried outside the body (bearer,
    /// header, basic, query), before the body is read.
    pub fn admit(&self, source_id: &str, head: &InboundRequest) -> Result<Admitted, IngestError> {
        let _span = crate::traced_span!("authenticate", credentials = "head").entered();
        let mapping = self
            .registry
            .current()
            .get(source_id)
            .cloned()
            .ok_or_else(|| IngestError::UnknownSource(source_id.to_owned()))?;
        if let Err(e) = credentials::verify_head(&mapping.auth, head) {
            answer::count_webhook(&mapping.id, "unauthorized");
            return Err(e.into());
        }
        Ok(Admitted { mapping })
    }

    /// Stores an admitted request, or spools it, and says how its format answers.
    pub async fn receive(
        &self,
        admitted: Admitted,
        request: InboundRequest,
        request_id: &str,
    ) -> Result<Answer, IngestError> {
        let mapping = admitted.mapping;
        let result = self.receive_admitted(&mapping, request, request_id).await;
        answer::count(&mapping.id, &result);
        result.and_then(|outcome| answer::answer(mapping.format, outcome))
    }

    async fn receive_admitted(
        &self,
        mapping: &Arc<SourceMapping>,
        request: InboundRequest,
        request_id: &str,
    ) -> Result<Outcome, IngestError> {
        // The webhook's span, stored with its outbox rows so their WebEngage calls link to it.
        let trace_context = crate::telemetry::traceparent(&tracing::Span::current());
        crate::traced_span!("authenticate", credentials = "signature")
            .in_scope(|| credentials::verify_signature(&mapping.auth, &request))?;
        let (request, content) = self
            .read(mapping, request)
            .instrument(crate::traced_span!("parse_map"))
            .await?;
        // Every format is spooled: only what passed authentication (the organization id
        // included) gets here, and each is answered as if committed.
        let spool = self.spool.as_ref();
        let spooled = match &content {
            Content::Records(records) => Ok(records.len()),
            Content::Malformed(body) => Err(body.reason().to_owned()),
        };
        // Behind a spool backlog, new requests queue too, so records keep the CRM's order.
        if let Some(spool) = spool.filter(|s| s.has_backlog()) {
            return spool_request(spool, &mapping.id, &request, request_id, spooled).await;
        }
        let meta = RequestMeta {
            source: &mapping.id,
            mapping_hash: &mapping.content_hash,
            content_type: request.content_type(),
            request_id,
            trace_context: trace_context.as_deref(),
        };
        let committed = self
            .commit(&meta, content)
            .instrument(crate::traced_span!("commit"))
            .await;
        match committed {
            Ok(outcome) => Ok(outcome),
            Err(CommitError::Unavailable(cause)) => {
                if let Some(spool) = spool {
                    tracing::warn!(error = %cause, source = %mapping.id, request_id, "Postgres unavailable; spooling the webhook");
                    return spool_request(spool, &mapping.id, &request, request_id, spooled).await;
                }
                tracing::error!(error = %cause, source = %mapping.id, request_id, "storing a webhook failed: Postgres is unavailable");
                Err(match mapping.format {
                    SourceFormat::SalesforceOutbound => IngestError::SoapFault,
                    _ => IngestError::Unavailable,
                })
            }
            Err(CommitError::Refused(cause)) => {
                tracing::error!(error = %cause, source = %mapping.id, request_id, "Postgres refused a webhook's records");
                Err(IngestError::Refused)
            }
        }
    }

    /// Parses and maps the body (off the async threads when large); a body that cannot
    /// be parsed becomes the content to keep, when the sender is known to be genuine.
    async fn read(
        &self,
        mapping: &Arc<SourceMapping>,
        request: InboundRequest,
    ) -> Result<(InboundRequest, Content), IngestError> {
        let options = ReadOptions {
            received_at: jiff::Timestamp::now(),
            max_records: self.max_records,
            verify_organization: true,
            explain: false,
        };
        let (request, read) = self.reader.read(mapping.clone(), request, options).await?;
        let content = match read {
            Ok(records) => Content::Records(records),
            Err(ReadError::Unauthorized(e)) => return Err(e.into()),
            Err(ReadError::Parse(ParseError::TooManyRecords { limit })) => {
                return Err(IngestError::TooManyRecords { limit });
            }
            Err(ReadError::Parse(ParseError::Malformed(e))) => {
                // When the only credential is the organization id inside the body, the
                // sender of an unreadable body is unknown: nothing is stored.
                if !mapping.auth.organization_ids.is_empty() {
                    return Err(IngestError::Malformed {
                        reason: e.0,
                        kept: false,
                    });
                }
                Content::Malformed(MalformedBody::new(&request.body, &e.0))
            }
        };
        Ok((request, content))
    }

    /// Checks attribute types, then commits; returns after the commit.
    async fn commit(
        &self,
        meta: &RequestMeta<'_>,
        content: Content,
    ) -> Result<Outcome, CommitError> {
        match content {
            Content::Records(mut records) => {
                answer::count_mapping_problems(meta.source, &records);
                self.types.check(self.pool(), &mut records).await?;
                let counts = self
                    .committer
                    .ingest(meta, Content::Records(records))
                    .await?;
                Ok(Outcome::Stored(counts))
            }
            Content::Malformed(body) => {
                let reason = body.reason().to_owned();
                self.committer
                    .ingest(meta, Content::Malformed(body))
                    .await?;
                Ok(Outcome::Malformed(reason))
            }
        }
    }

    /// Stores a spooled request (authenticated before it was spooled; the spool keeps
    /// no credentials).
    async fn store_spooled(&self, entry: &SpoolEntry) -> Result<(), Replay> {
        let (mappings, request) = (self.registry.current(), entry.request());
        let (Some(mapping), Some(request)) = (mappings.get(&entry.source), request) else {
            return Err(Replay::Refused(format!(
                "the source `{}` no longer exists, or the entry is damaged",
                entry.source
            )));
        };
        let (request, content) = match self.read(mapping, request).await {
            Ok(read) => read,
            Err(IngestError::Busy(e)) => return Err(Replay::Later(e.to_string())),
            Err(e) => return Err(Replay::Refused(e.to_string())),
        };
        let meta = RequestMeta {
            source: &mapping.id,
            mapping_hash: &mapping.content_hash,
            content_type: request.content_type(),
            request_id: &entry.request_id,
            // The webhook's trace ended when it was spooled.
            trace_context: None,
        };
        match self.commit(&meta, content).await {
            Ok(_) => Ok(()),
            Err(CommitError::Unavailable(e)) => Err(Replay::Later(e.to_string())),
            Err(CommitError::Refused(e)) => Err(Replay::Refused(e.to_string())),
        }
    }
}

/// Why a spooled request was not stored.
#[derive(Debug)]
enum Replay {
    /// Postgres is still unavailable: keep it, try again.
    Later(String),
    /// It can never be stored: set it aside, go on.
    Refused(String),
}

/// Appends to the spool (fsynced), and only then answers 200.
async fn spool_request(
    spool: &Spool,
    source: &str,
    request: &InboundRequest,
    request_id: &str,
    read: Result<usize, String>,
) -> Result<Outcome, IngestError> {
    if let Err(e) = spool
        .append(&SpoolEntry::new(source, request_id, request))
        .instrument(crate::traced_span!("spool"))
        .await
    {
        tracing::error!(error = %e, request_id, "cannot write to the spool");
        return Err(IngestError::Unavailable);
    }
    Ok(Outcome::Spooled(read))
}
