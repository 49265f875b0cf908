//! WebEngage's side: payload types, data-center hosts, the HTTP client and the rules
//! WebEngage enforces silently.

pub mod client;
pub mod data_center;
pub mod operation;
pub mod rules;
pub mod types;

pub use data_center::DataCenter;
pub use operation::{DroppedField, Operation, OperationKind};
