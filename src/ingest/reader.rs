//! Where bodies are parsed and mapped, so that no request holds an HTTP worker.
//!
//! A small body is read where it arrives: parsing and mapping it take microseconds.
//! A larger one goes to tokio's blocking threads, at most one per CPU at a time (the
//! others wait for a permit without holding a thread), and gets a time budget: past
//! it the request is answered 503 with `Retry-After` while the parse finishes in the
//! background, still holding its permit, so a flood cannot multiply the work. The
//! parsers are linear and bounded (`source::xml_guard`, the record cap): the budget is
//! for a machine too busy to keep up, not for any shape of body.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::mapping::{IncomingRecord, ReadError, ReadOptions, SourceMapping};
use crate::source::InboundRequest;

/// Bodies up to this size are read on the thread that received them.
pub const INLINE_BYTES: usize = 64 * 1024;
/// How long a large body may take to parse and map before the request gets a 503.
pub const BUDGET: Duration = Duration::from_secs(5);

/// The blocking-thread permits every HTTP worker shares; cheap to clone.
#[derive(Clone)]
pub struct Reader {
    permits: Arc<Semaphore>,
    budget: Duration,
}

/// The request given back (its body is spooled or kept as malformed) with what was read.
pub type Read = (InboundRequest, Result<Vec<IncomingRecord>, ReadError>);

/// The body was still being read when its budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body could not be read within {0:?}; the service is busy, retry later")]
pub struct OverBudget(pub Duration);

impl Default for Reader {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Reader::new(cpus, BUDGET)
    }
}

impl Reader {
    pub fn new(parallel: usize, budget: Duration) -> Self {
        Reader {
            permits: Arc::new(Semaphore::new(parallel.max(1))),
            budget,
        }
    }

    /// Parses and maps `request`'s body with `mapping` ([`SourceMapping::read`]).
    pub async fn read(
        &self,
        mapping: Arc<SourceMapping>,
        request: InboundRequest,
        options: ReadOptions,
    ) -> Result<Read, OverBudget> {
        if request.body.len() <= INLINE_BYTES {
            let read = mapping.read(request.as_body(), &options);
            return Ok((request, read));
        }
        let work = async {
            let permit = self.permits.clone().acquire_owned().await;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let read = mapping.read(request.as_body(), &options);
                (request, read)
            })
            .await
        };
        match tokio::time::timeout(self.budget, work).await {
            Ok(Ok(read)) => Ok(read),
            // The closure does not panic on data; a panic is a bug and was reported by
            // the panic hook. The request cannot be answered better than "try later".
            Ok(Err(_)) | Err(_) => Err(OverBudget(self.budget)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn mapping() -> Arc<SourceMapping> {
        let yaml = "source: { format: json, auth: none }\nrules:\n  - name: r\n    user: { userId: $.Id }\n";
        Arc::new(SourceMapping::from_yaml_str(Path::new("s.yaml"), yaml).unwrap())
    }

    fn request(body: Vec<u8>) -> InboundRequest {
        InboundRequest {
            body,
            ..InboundRequest::default()
        }
    }

    fn options() -> ReadOptions {
        ReadOptions::offline(jiff::Timestamp::UNIX_EPOCH)
    }

    #[tokio::test]
    async fn small_and_large_bodies_read_the_same() {
        let reader = Reader::default();
        let (_, small) = reader
            .read(mapping(), request(br#"{"Id": "a"}"#.to_vec()), options())
            .await
            .unwrap();
        let mut large = br#"{"Id": "a", "pad": ""#.to_vec();
        large.resize(INLINE_BYTES * 2, b'x');
        large.extend(br#""}"#);
        let (given_back, read) = reader
            .read(mapping(), request(large.clone()), options())
            .await
            .unwrap();
        assert_eq!(given_back.body, large, "the body comes back for the spool");
        assert_eq!(small.unwrap()[0].mapped.operations[0].body["userId"], "a");
        assert_eq!(read.unwrap()[0].mapped.operations[0].body["userId"], "a");
    }

    #[tokio::test]
    async fn a_large_body_waits_for_a_permit_and_is_refused_past_its_budget() {
        let reader = Reader::new(1, Duration::from_millis(50));
        // The only permit is taken: the large body cannot start within its budget.
        let held = reader.permits.clone().acquire_owned().await.unwrap();
        let body = vec![b' '; INLINE_BYTES + 1];
        let refused = reader.read(mapping(), request(body), options()).await;
        assert_eq!(refused.err(), Some(OverBudget(Duration::from_millis(50))));
        drop(held);
        let body = vec![b' '; INLINE_BYTES + 1];
        let (_, read) = reader
            .read(mapping(), request(body), options())
            .await
            .unwrap();
        assert!(read.is_err(), "an empty body is malformed, and was read");
    }
}
