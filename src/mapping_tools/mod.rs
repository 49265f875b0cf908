//! Tools for the people who write mapping files, beside the language itself: the
//! editor JSON Schema (`mappings schema`), the mapping test-case runner (`mappings
//! test`, and the gate of every reload) and preview (`mappings preview`).

pub mod preview;
pub mod schema;
pub mod testing;
