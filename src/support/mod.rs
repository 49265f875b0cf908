//! Support: what support staff do to the store, whatever the surface (console pages,
//! admin API, CLI): the actions with their audit entries (`actions`, `remap`), what a
//! caller may see (`view`, with the viewer masking of `mask`), and erasure.
//!
//! Every surface parses its request into these domain types and calls one function
//! here; the function writes the audit entry. Errors are one enum, mapped to HTTP once
//! (`http::error`) and to exit codes once (`cli::support`).

pub mod actions;
pub mod erase;
pub mod imports;
pub mod jobs;
pub mod mask;
pub mod remap;
pub mod search;
pub mod view;

/// Who acts: the token role of an HTTP caller, or the terminal. Written to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
    /// `webengage-bridge outbox|inbound|erase ...`: whoever can reach the database.
    Cli,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
            Role::Cli => "cli",
        }
    }

    /// Only the viewer role reads masked data and may not act.
    pub fn may_act(self) -> bool {
        self != Role::Viewer
    }
}

/// Why a support action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("{0}")]
    NotFound(String),
    /// The action would change nothing; the reason says why (e.g. the row is delivered).
    #[error("{0}")]
    Conflict(String),
    /// The request names something that cannot be acted on (a bad status, a search too long).
    #[error("{0}")]
    Invalid(String),
    #[error("the viewer role may only read")]
    ReadOnly,
    #[error(transparent)]
    Remap(#[from] remap::RemapError),
    #[error("the database is unavailable: {0}")]
    Storage(#[from] sqlx::Error),
}
