//! What each format answers, and the metrics of every webhook.
//!
//! Salesforce reads only its SOAP acknowledgement; LeadSquared may disable a webhook
//! that answers other than 200, so it gets 200 with a status body for everything
//! stored, a malformed body included; JSON sources get the counts. Metric labels come
//! only from the loaded mappings (source ids, rule names) and fixed words, never from
//! what a request carries.

use serde::Serialize;

use super::IngestError;
use crate::mapping::IncomingRecord;
use crate::source::SourceFormat;
use crate::store::inbound::IngestCounts;

/// A webhook's successful answer, in its format's words (always HTTP 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Salesforce: the SOAP acknowledgement, `source::salesforce::ACK`.
    SoapAck,
    /// LeadSquared: a status body.
    LeadSquared(LeadSquaredAnswer),
    /// JSON sources: what became of the records.
    Counts(IngestCounts),
    /// JSON sources, while Postgres is unavailable: the records are in the spool.
    Spooled(SpooledCounts),
}

/// `{"accepted": 0, …, "spooled": N}`: the contract's counts, all zero (nothing is in
/// Postgres yet), and how many records wait in the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpooledCounts {
    #[serde(flatten)]
    pub counts: IngestCounts,
    pub spooled: usize,
}

/// `{"Status": …, "StatusReason": …, "accepted": …, …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeadSquaredAnswer {
    #[serde(rename = "Status")]
    pub status: &'static str,
    #[serde(rename = "StatusReason")]
    pub reason: String,
    #[serde(flatten)]
    pub counts: IngestCounts,
}

/// What a request came to, before it is put in its format's words.
#[derive(Debug)]
pub(super) enum Outcome {
    Stored(IngestCounts),
    /// The body could not be parsed and was kept as a `malformed` record.
    Malformed(String),
    /// Appended to the spool, to be stored once Postgres is back: how many records
    /// the body holds, or why it could not be parsed (kept as `malformed` on replay).
    Spooled(Result<usize, String>),
}

/// The answer to an outcome in `format`'s words: a malformed body kept is a 400 for
/// every format but LeadSquared.
pub(super) fn answer(format: SourceFormat, outcome: Outcome) -> Result<Answer, IngestError> {
    let lsq = |status, reason: String, counts| {
        Answer::LeadSquared(LeadSquaredAnswer {
            status,
            reason,
            counts,
        })
    };
    Ok(match (format, outcome) {
        (SourceFormat::LeadSquared, Outcome::Stored(counts)) => {
            lsq("Success", status_reason(&counts), counts)
        }
        (SourceFormat::LeadSquared, Outcome::Malformed(reason)) => {
            lsq("Error", reason, IngestCounts::default())
        }
        (SourceFormat::LeadSquared, Outcome::Spooled(_)) => {
            lsq("Success", "spooled".to_owned(), IngestCounts::default())
        }
        // A malformed body is spooled (and kept on replay) but answered as one.
        (_, Outcome::Malformed(reason) | Outcome::Spooled(Err(reason))) => {
            return Err(IngestError::Malformed { reason, kept: true });
        }
        // The acknowledgement comes after the spool's fsync, as after a commit.
        (SourceFormat::SalesforceOutbound, Outcome::Stored(_) | Outcome::Spooled(Ok(_))) => {
            Answer::SoapAck
        }
        (SourceFormat::Json, Outcome::Spooled(Ok(records))) => Answer::Spooled(SpooledCounts {
            counts: IngestCounts::default(),
            spooled: records,
        }),
        (SourceFormat::Json, Outcome::Stored(counts)) => Answer::Counts(counts),
    })
}

fn status_reason(c: &IngestCounts) -> String {
    format!(
        "{} accepted, {} duplicate, {} ignored, {} stale, {} failed",
        c.accepted, c.duplicates, c.ignored, c.stale, c.failed
    )
}

/// Counts webhooks by source and outcome, and records by what became of them.
pub(super) fn count(source: &str, result: &Result<Outcome, IngestError>) {
    let outcome = match result {
        Ok(Outcome::Stored(counts)) => {
            for (status, n) in [
                ("accepted", counts.accepted),
                ("duplicate", counts.duplicates),
                ("ignored", counts.ignored),
                ("stale", counts.stale),
                ("failed", counts.failed),
            ] {
                // A series appears with its first record: no registry lookup per request
                // for the four counts that are zero.
                if n > 0 {
                    metrics::counter!("bridge_records_total", "source" => source.to_owned(), "status" => status).increment(u64::from(n));
                }
            }
            "stored"
        }
        Ok(Outcome::Malformed(_)) | Err(IngestError::Malformed { .. }) => "malformed",
        Ok(Outcome::Spooled(_)) => "spooled",
        Err(IngestError::UnknownSource(_)) => return,
        Err(IngestError::Unauthorized(_)) => "unauthorized",
        Err(IngestError::TooManyRecords { .. }) => "too_many_records",
        Err(IngestError::Unavailable | IngestError::SoapFault | IngestError::Refused) => {
            "storage_error"
        }
        Err(IngestError::Busy(_)) => "busy",
    };
    count_webhook(source, outcome);
}

pub(super) fn count_webhook(source: &str, outcome: &'static str) {
    metrics::counter!("bridge_webhooks_total", "source" => source.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Warnings and failures per rule, so a mapping that starts dropping fields after a
/// CRM change shows on a dashboard, not only in support tickets. Redeliveries count
/// again: this measures what the CRM sends, not what is stored. The rule label is the
/// rule's name from the mapping file, carried by each warning and failure.
pub(super) fn count_mapping_problems(source: &str, records: &[IncomingRecord]) {
    for record in records {
        for warning in &record.mapped.warnings {
            metrics::counter!("bridge_mapping_warnings_total", "source" => source.to_owned(), "rule" => warning.rule.clone()).increment(1);
        }
        for failure in &record.mapped.failures {
            metrics::counter!("bridge_mapping_failures_total", "source" => source.to_owned(), "rule" => failure.rule.clone()).increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_says_stored_its_own_way() {
        let counts = IngestCounts {
            accepted: 2,
            failed: 1,
            ..IngestCounts::default()
        };
        assert_eq!(
            answer(SourceFormat::SalesforceOutbound, Outcome::Stored(counts)).unwrap(),
            Answer::SoapAck
        );
        assert_eq!(
            answer(SourceFormat::Json, Outcome::Stored(counts)).unwrap(),
            Answer::Counts(counts)
        );
        let Answer::LeadSquared(lsq) =
            answer(SourceFormat::LeadSquared, Outcome::Stored(counts)).unwrap()
        else {
            panic!("LeadSquared answers with a status body");
        };
        assert_eq!(
            serde_json::to_value(&lsq).unwrap(),
            serde_json::json!({"Status": "Success", "StatusReason": "2 accepted, 0 duplicate, 0 ignored, 0 stale, 1 failed",
                "accepted": 2, "duplicates": 0, "ignored": 0, "stale": 0, "failed": 1})
        );
    }

    #[test]
    fn a_spooled_request_is_answered_as_stored_in_each_format() {
        assert_eq!(
            answer(SourceFormat::SalesforceOutbound, Outcome::Spooled(Ok(3))).unwrap(),
            Answer::SoapAck
        );
        let Answer::Spooled(json) = answer(SourceFormat::Json, Outcome::Spooled(Ok(3))).unwrap()
        else {
            panic!("JSON sources hear how many records were spooled");
        };
        assert_eq!(
            serde_json::to_value(&json).unwrap(),
            serde_json::json!({"accepted": 0, "duplicates": 0, "ignored": 0, "stale": 0, "failed": 0, "spooled": 3})
        );
        assert!(matches!(
            answer(SourceFormat::LeadSquared, Outcome::Spooled(Ok(3))),
            Ok(Answer::LeadSquared(LeadSquaredAnswer {
                status: "Success",
                ..
            }))
        ));
        assert!(matches!(
            answer(SourceFormat::Json, Outcome::Spooled(Err("bad".into()))),
            Err(IngestError::Malformed { kept: true, .. })
        ));
    }

    #[test]
    fn a_kept_malformed_body_is_200_only_for_leadsquared() {
        let malformed = || Outcome::Malformed("JSON is malformed".into());
        assert!(matches!(
            answer(SourceFormat::LeadSquared, malformed()),
            Ok(Answer::LeadSquared(LeadSquaredAnswer {
                status: "Error",
                ..
            }))
        ));
        for format in [SourceFormat::Json, SourceFormat::SalesforceOutbound] {
            assert!(matches!(
                answer(format, malformed()),
                Err(IngestError::Malformed { kept: true, .. })
            ));
        }
    }
}
