//! Accepting a webhook: authenticate, parse, map, store (one transaction), answer.
