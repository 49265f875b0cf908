//! WebEngage's side: payload types, data-center hosts, the HTTP client and the rules
//! WebEngage enforces silently.

pub mod client;
pub mod data_center;
pub mod model;
pub mod rules;
pub mod types;

pub use data_center::DataCenter;
pub use model::{Operation, OperationKind};
