//! The integration tests: one binary (one link of the crate), each module a concern,
//! every test on its own fresh database (`helpers::TestDb`, dropped after the test).

mod helpers;

mod admin_api;
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
mod end_to_end;
mod group_commit;
mod hostile_input;
mod import;
mod mapping_reload;
mod metrics;
mod ops_config;
mod ops_deploy;
mod ops_health;
mod resilience;
mod support_lifecycle;
mod transactions;
mod webhooks;
