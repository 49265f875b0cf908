//! The rules WebEngage enforces silently (it answers "queued" and drops bad data later),
//! checked here, where someone can still fix the mapping.

/// Attribute and event names must be shorter than this.
pub const MAX_NAME_CHARS: usize = 50;
/// String values must be shorter than this.
pub const MAX_STRING_CHARS: usize = 1000;
/// WebEngage reserves names with this prefix.
pub const RESERVED_PREFIX: &str = "we_";
