//! Support: what support staff do to the store, whatever the surface (console pages,
//! admin API, CLI): the actions with their audit entries, and the viewer masking.

pub mod mask;
pub mod remap;
