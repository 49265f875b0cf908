//! WebEngage's side: payload types, data-center hosts and the rules WebEngage enforces silently.

pub mod operation;
pub mod rules;
pub mod types;

pub use operation::{DroppedField, Operation, OperationKind};
