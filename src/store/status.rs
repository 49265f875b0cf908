//! The closed sets the tables hold, as Rust enums mapped to Postgres enum types
//! (`migrations/*_typed_statuses.sql`): an outbox row's status, an inbound record's
//! status, and an operation's kind. Every status and kind outside `store/` is one of
//! these, never a string.

use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use crate::mapping::RecordStatus;
use crate::webengage::OperationKind;

/// Where an outbox row is in its life (`outbox.status`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
)]
#[sqlx(type_name = "outbox_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting: never tried, or waiting for a retry (`next_attempt_at` says when).
    Pending,
    /// Claimed by a worker under a lease.
    InFlight,
    Delivered,
    /// Will never be delivered (rejected, or out of retries).
    Dead,
    /// Never to be sent (a support action, or superseded by a re-map).
    Cancelled,
}

impl OutboxStatus {
    /// Every status, in the order a row moves through them.
    pub const ALL: [OutboxStatus; 5] = [
        OutboxStatus::Pending,
        OutboxStatus::InFlight,
        OutboxStatus::Delivered,
        OutboxStatus::Dead,
        OutboxStatus::Cancelled,
    ];
    /// The names of `ALL`, as the API, the pages and the metrics label them.
    pub const NAMES: [&'static str; 5] = [
        OutboxStatus::Pending.as_str(),
        OutboxStatus::InFlight.as_str(),
        OutboxStatus::Delivered.as_str(),
        OutboxStatus::Dead.as_str(),
        OutboxStatus::Cancelled.as_str(),
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::InFlight => "in_flight",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
            OutboxStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `name`, if it is one.
    pub fn parse(name: &str) -> Option<OutboxStatus> {
        OutboxStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether support may make a row in this status due now (`support::retry_now`).
    pub fn can_retry(self) -> bool {
        matches!(
            self,
            OutboxStatus::Pending | OutboxStatus::Dead | OutboxStatus::Cancelled
        )
    }

    /// Whether `replay` takes rows of this status: rows that will not be sent unless
    /// someone acts.
    pub fn can_replay(self) -> bool {
        matches!(self, OutboxStatus::Dead | OutboxStatus::Cancelled)
    }

    /// Whether support may cancel a row in this status (`support::cancel`).
    pub fn can_cancel(self) -> bool {
        matches!(self, OutboxStatus::Pending | OutboxStatus::Dead)
    }
}

/// What became of a CRM record (`inbound_records.status`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
)]
#[sqlx(type_name = "inbound_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum InboundStatus {
    /// At least one rule applied: its operations are in the outbox.
    Mapped,
    /// No rule matched.
    Ignored,
    /// Older than a version already accepted.
    Stale,
    /// A rule failed; kept for re-mapping.
    Failed,
    /// The body could not be parsed; kept verbatim.
    Malformed,
}

impl InboundStatus {
    pub const ALL: [InboundStatus; 5] = [
        InboundStatus::Mapped,
        InboundStatus::Ignored,
        InboundStatus::Stale,
        InboundStatus::Failed,
        InboundStatus::Malformed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            InboundStatus::Mapped => "mapped",
            InboundStatus::Ignored => "ignored",
            InboundStatus::Stale => "stale",
            InboundStatus::Failed => "failed",
            InboundStatus::Malformed => "malformed",
        }
    }

    /// The status named `name`, if it is one.
    pub fn parse(name: &str) -> Option<InboundStatus> {
        InboundStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl From<RecordStatus> for InboundStatus {
    fn from(status: RecordStatus) -> Self {
        match status {
            RecordStatus::Mapped => InboundStatus::Mapped,
            RecordStatus::Ignored => InboundStatus::Ignored,
            RecordStatus::Failed => InboundStatus::Failed,
        }
    }
}

impl fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for InboundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `outbox.kind` is the Postgres enum `operation_kind`, holding `OperationKind`'s names.
const KIND_TYPE: &str = "operation_kind";
const KINDS: [OperationKind; 3] = [
    OperationKind::User,
    OperationKind::Event,
    OperationKind::Transaction,
];

impl Type<Postgres> for OperationKind {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name(KIND_TYPE)
    }
}

impl PgHasArrayType for OperationKind {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::array_of(KIND_TYPE)
    }
}

impl Encode<'_, Postgres> for OperationKind {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.as_str(), buf)
    }
}

impl Decode<'_, Postgres> for OperationKind {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        let name = <&str as Decode<Postgres>>::decode(value)?;
        KINDS
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| format!("`{name}` is not an operation kind").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for status in OutboxStatus::ALL {
            assert_eq!(OutboxStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        for status in InboundStatus::ALL {
            assert_eq!(InboundStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(OutboxStatus::InFlight.as_str(), "in_flight");
        assert_eq!(OutboxStatus::parse("queued"), None);
    }

    #[test]
    fn support_may_retry_and_cancel_only_rows_not_under_way() {
        let retry: Vec<_> = OutboxStatus::ALL
            .into_iter()
            .filter(|s| s.can_retry())
            .collect();
        assert_eq!(
            retry,
            [
                OutboxStatus::Pending,
                OutboxStatus::Dead,
                OutboxStatus::Cancelled
            ]
        );
        let cancel: Vec<_> = OutboxStatus::ALL
            .into_iter()
            .filter(|s| s.can_cancel())
            .collect();
        assert_eq!(cancel, [OutboxStatus::Pending, OutboxStatus::Dead]);
    }
}
