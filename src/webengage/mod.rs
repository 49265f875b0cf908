//! WebEngage's side: payload types, data-center hosts and the rules WebEngage enforces silently.

pub mod model;
pub mod rules;
pub mod types;

pub use model::{Operation, OperationKind};
