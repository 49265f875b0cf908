//! Inbound records and the ingest transaction.
