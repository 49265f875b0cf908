//! Builds the application: pool, mappings, HTTP server, worker.
