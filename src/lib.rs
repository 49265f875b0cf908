//! webengage-bridge: CRM webhooks in, WebEngage REST calls out, a Postgres outbox between.
//!
//! The stages follow a record's way through the service: `ingest` owns a webhook from
//! authenticated bytes to the answer, using `source` (bytes → records, credentials),
//! `mapping` (records → WebEngage operations) and `store` (inbound records and outbox
//! rows, one transaction); `delivery` drains the outbox into WebEngage (`webengage`).
//! `support` acts on the store for people; `http` holds the thin route handlers;
//! `startup` wires everything together.

pub mod cli;
pub mod config;
pub mod delivery;
pub mod http;
pub mod import;
pub mod ingest;
pub mod mapping;
pub mod mapping_tools;
pub mod source;
pub mod startup;
pub mod store;
pub mod support;
pub mod telemetry;
pub mod tls;
pub mod webengage;
