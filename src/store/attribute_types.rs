//! `attribute_types`: the first-seen type of each custom attribute (see
//! `webengage::types`). Loaded whole into memory; new attributes are added as records
//! bring them, the first writer winning. The table stays bounded: WebEngage's 25
//! attributes of each type per scope, and `webengage::types::MAX_EVENT_SCOPES`.

use sqlx::PgPool;

use super::storable::text;
use crate::webengage::types::{AttrType, AttributeType, AttributeTypes};

/// Every recorded type. Rows with a type this version does not know are skipped (logged).
pub async fn load_all(pool: &PgPool) -> Result<AttributeTypes, sqlx::Error> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT scope, name, json_type FROM attribute_types")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().filter_map(row).collect())
}

fn row((scope, name, json_type): (String, String, String)) -> Option<AttributeType> {
    match AttrType::parse(&json_type) {
        Some(t) => Some(AttributeType {
            scope,
            name,
            json_type: t,
        }),
        None => {
            tracing::warn!(%scope, %name, %json_type, "unknown attribute type in attribute_types; ignored");
            None
        }
    }
}

/// Records first-seen types; an attribute already recorded keeps its type (another
/// process may have recorded it first). Returns the rows actually inserted: merge those
/// into the snapshot, and reload it when fewer came back than were sent.
pub async fn record_new<'e, E>(
    executor: E,
    new: &[AttributeType],
) -> Result<Vec<AttributeType>, sqlx::Error>
where
    E: sqlx::PgExecutor<'e>,
{
    if new.is_empty() {
        return Ok(Vec::new());
    }
    // Names are checked by the mapping (no control characters); stored text stays
    // storable whatever reaches this point.
    let scopes: Vec<String> = new.iter().map(|a| text(&a.scope).into_owned()).collect();
    let names: Vec<String> = new.iter().map(|a| text(&a.name).into_owned()).collect();
    let types: Vec<&str> = new.iter().map(|a| a.json_type.as_str()).collect();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "INSERT INTO attribute_types (scope, name, json_type)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
         ON CONFLICT (scope, name) DO NOTHING
         RETURNING scope, name, json_type",
    )
    .bind(&scopes)
    .bind(&names)
    .bind(&types)
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().filter_map(row).collect())
}
