//! What a caller may see of the store: the same rows for the admin API, the pages and
//! the CLI, with personal data masked for the viewer role. A viewer's reveal is written
//! to the audit log before anything is shown, so every look at personal data is on record.

use serde_json::Value;
use sqlx::PgPool;

use super::mask::{self, Reveal};
use super::{Role, SupportError};
use crate::store::support::{self as store, AttemptItem, InboundItem, OutboxDetail, OutboxItem};

/// Admins and the terminal see everything; viewers see masked data until they reveal it.
pub fn default_reveal(role: Role) -> Reveal {
    match role {
        Role::Admin | Role::Cli => Reveal::All,
        Role::Viewer => Reveal::none(),
    }
}

/// What a request asks to see unmasked: `all`, or field names separated by commas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealRequest(Reveal);

impl TryFrom<&str> for RevealRequest {
    type Error = SupportError;

    fn try_from(asked: &str) -> Result<Self, Self::Error> {
        let asked = asked.trim();
        if asked.len() > 1000 || asked.contains('\0') {
            return Err(SupportError::Invalid(
                "`reveal` is `all` or a list of field names".into(),
            ));
        }
        Ok(RevealRequest(if asked == "all" {
            Reveal::All
        } else {
            Reveal::Fields(
                asked
                    .split(',')
                    .map(|f| f.trim().to_owned())
                    .filter(|f| !f.is_empty())
                    .collect(),
            )
        }))
    }
}

/// What `role` sees of `target` (`outbox 12`, `inbound 7`), given what it asked to
/// reveal. A viewer's reveal is audited first; admins and the terminal reveal nothing,
/// they see everything anyway.
pub async fn reveal_for(
    pool: &PgPool,
    role: Role,
    asked: Option<RevealRequest>,
    target: &str,
) -> Result<Reveal, SupportError> {
    let asked = asked.filter(|a| a.0 != Reveal::none());
    let (Role::Viewer, Some(RevealRequest(reveal))) = (role, asked) else {
        return Ok(default_reveal(role));
    };
    let what = match &reveal {
        Reveal::All => target.to_owned(),
        Reveal::Fields(fields) => format!("{target} fields {}", fields.join(",")),
    };
    store::audit(pool, role.as_str(), "reveal", &what, 1).await?;
    Ok(reveal)
}

/// An outbox row as listed, masked for the caller.
pub fn outbox_item(item: &OutboxItem, reveal: &Reveal) -> OutboxItem {
    if reveal.is_all() {
        return item.clone();
    }
    OutboxItem {
        user_id: item.user_id.as_deref().map(|u| mask::text_for(u, reveal)),
        last_error: item
            .last_error
            .as_deref()
            .map(|e| mask::text_for(e, reveal)),
        ..item.clone()
    }
}

/// A stored CRM record, masked for the caller: the parsed record by field, the raw
/// body of a malformed one by field name and content, errors and warnings by content.
pub fn inbound_item(item: &InboundItem, reveal: &Reveal) -> InboundItem {
    if reveal.is_all() {
        return item.clone();
    }
    let warnings = match &item.warnings {
        Value::Array(list) => Value::Array(
            list.iter()
                .map(|w| match w {
                    Value::String(s) => Value::String(mask::quoted_for(s, reveal)),
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    };
    InboundItem {
        dedupe_key: mask::text_for(&item.dedupe_key, reveal),
        payload: item.payload.as_ref().map(|p| mask::mask_json(p, reveal)),
        raw_body: item.raw_body.as_deref().map(|r| mask::raw_for(r, reveal)),
        warnings,
        error: item.error.as_deref().map(|e| mask::quoted_for(e, reveal)),
        ..item.clone()
    }
}

fn attempt(a: &AttemptItem, reveal: &Reveal) -> AttemptItem {
    AttemptItem {
        response_excerpt: a
            .response_excerpt
            .as_deref()
            .map(|r| mask::text_for(r, reveal)),
        ..a.clone()
    }
}

/// One row with everything about it, masked for the caller, and the names of the
/// fields still masked (what a viewer can choose to reveal).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShownDetail {
    #[serde(flatten)]
    pub detail: OutboxDetail,
    /// Field names still masked; empty when everything is shown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked_fields: Vec<String>,
}

pub fn outbox_detail(detail: &OutboxDetail, reveal: &Reveal) -> ShownDetail {
    let mut fields = mask::masked_fields(&detail.body);
    if let Some(payload) = detail.inbound.as_ref().and_then(|i| i.payload.as_ref()) {
        for f in mask::masked_fields(payload) {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
    }
    ShownDetail {
        masked_fields: still_masked(fields, reveal),
        detail: OutboxDetail {
            item: outbox_item(&detail.item, reveal),
            body: mask::mask_json(&detail.body, reveal),
            mapping_hash: detail.mapping_hash.clone(),
            attempts_log: detail
                .attempts_log
                .iter()
                .map(|a| attempt(a, reveal))
                .collect(),
            inbound: detail.inbound.as_ref().map(|i| inbound_item(i, reveal)),
        },
    }
}

/// One stored record, masked for the caller, with the fields still masked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShownRecord {
    #[serde(flatten)]
    pub record: InboundItem,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked_fields: Vec<String>,
}

pub fn inbound_record(item: &InboundItem, reveal: &Reveal) -> ShownRecord {
    let fields = item
        .payload
        .as_ref()
        .map(mask::masked_fields)
        .unwrap_or_default();
    ShownRecord {
        masked_fields: still_masked(fields, reveal),
        record: inbound_item(item, reveal),
    }
}

fn still_masked(fields: Vec<String>, reveal: &Reveal) -> Vec<String> {
    match reveal {
        Reveal::All => Vec::new(),
        Reveal::Fields(shown) => fields.into_iter().filter(|f| !shown.contains(f)).collect(),
    }
}

/// A page of rows, masked for the caller.
pub fn outbox_page(page: &store::Page<OutboxItem>, reveal: &Reveal) -> store::Page<OutboxItem> {
    store::Page {
        items: page.items.iter().map(|i| outbox_item(i, reveal)).collect(),
        next: page.next,
    }
}

pub fn inbound_page(page: &store::Page<InboundItem>, reveal: &Reveal) -> store::Page<InboundItem> {
    store::Page {
        items: page.items.iter().map(|i| inbound_item(i, reveal)).collect(),
        next: page.next,
    }
}
