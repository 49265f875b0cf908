//! The stale-version fence for a whole batch in one statement.
//!
//! `inbound::advance_version` moves one record's fence per round trip, which is fine
//! for a webhook of a few records but would make an import of a million versioned
//! Salesforce rows a million round trips. When every versioned record of a batch is
//! about a different CRM record, each fence moves at most once, so one upsert over the
//! batch decides exactly what the per-record loop would: a record is stale when the
//! fence did not move for it. A batch where one CRM record appears twice needs the
//! running order between its versions, and is left to the per-record loop.

use std::borrow::Cow;
use std::collections::HashSet;

use sqlx::PgConnection;

use super::columns::InsertColumns;
use super::storable;

/// Advances the fence of every versioned row of the batch; per row in order, whether
/// it is stale. `None` (nothing done) when a CRM record appears twice.
pub(super) async fn advance_all(
    conn: &mut PgConnection,
    columns: &InsertColumns,
) -> Result<Option<Vec<bool>>, sqlx::Error> {
    let mut fenced: Vec<(usize, &str, Cow<'_, str>, &str)> = Vec::new();
    for (index, (source, version)) in columns.sources.iter().zip(&columns.versions).enumerate() {
        if let Some(version) = version {
            fenced.push((
                index,
                source.as_str(),
                storable::key(&version.key),
                version.at.as_str(),
            ));
        }
    }
    // Sorted by key, so concurrent batches lock the fence rows in one order and
    // cannot deadlock each other; a key twice in a row is one CRM record twice.
    fenced.sort_unstable_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
    if fenced
        .windows(2)
        .any(|w| (w[0].1, &w[0].2) == (w[1].1, &w[1].2))
    {
        return Ok(None);
    }
    let sources: Vec<&str> = fenced.iter().map(|f| f.1).collect();
    let keys: Vec<&str> = fenced.iter().map(|f| f.2.as_ref()).collect();
    let ats: Vec<&str> = fenced.iter().map(|f| f.3).collect();
    let advanced: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO record_versions (source, record_key, version_at)
         SELECT s, k, a FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(s, k, a, ord)
         ORDER BY ord
         ON CONFLICT (source, record_key) DO UPDATE
           SET version_at = EXCLUDED.version_at, updated_at = now()
           WHERE record_versions.version_at <= EXCLUDED.version_at
         RETURNING source, record_key",
    )
    .bind(&sources)
    .bind(&keys)
    .bind(&ats)
    .fetch_all(&mut *conn)
    .await?;
    let advanced: HashSet<(&str, &str)> = advanced
        .iter()
        .map(|(s, k)| (s.as_str(), k.as_str()))
        .collect();
    let mut stale = vec![false; columns.len()];
    for (index, source, key, _) in &fenced {
        stale[*index] = !advanced.contains(&(*source, key.as_ref()));
    }
    Ok(Some(stale))
}
