//! The integration tests: one binary (one link of the crate), each module a concern,
//! every test on its own fresh database (`helpers::TestDb`, dropped after the test).

mod helpers;

mod admin_api;
mod admin_api_errors;
mod admin_dashboard;
mod admin_pages;
mod attribute_types;
mod binary;
mod browser;
mod cli_mappings;
mod cli_support;
mod delivery;
mod delivery_bulk;
mod delivery_limits;
mod delivery_processes;
mod delivery_store;
mod docs;
mod end_to_end;
mod group_commit;
mod hostile;
mod hostile_input;
mod import;
mod import_failures;
mod layout;
mod mapping_fidelity;
mod mapping_reload;
mod metrics;
mod openapi;
mod ops_config;
mod ops_deploy;
mod ops_health;
mod resilience;
mod support_lifecycle;
#[cfg(feature = "otel")]
mod telemetry;
mod transactions;
mod webhooks;
