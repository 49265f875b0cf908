//! The stale-version fence for a whole batch in one statement.
//!
//! `inbound::advance_version` moves one record's fence per round trip, which is fine
//! for a webhook of a few records but would make an import of a million versioned
//! Salesforce rows a million round trips. When every versioned record of a batch is
//! about a different CRM record, each fence moves at most once, so one upsert over the
//! batch decides exactly what the per-record loop would: a record is stale when the
//! fence did not move for it. A batch where one CRM record appears twice needs the
//! running order between its versions, and is left to the per-record loop.

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
    let mut fenced: Vec<(usize, &str, String, &str)> = Vec::new();
    for (index, (source, version)) in columns.sources.iter().zip(&columns.versions).enumerate() {
        if let Some(version) = version {
            let key = storable::key(&version.key).into_owned();
            fenced.push((index, source.as_str(), key, version.at.as_str()));
        }
    }
    let total = columns.len();
    let mut seen = HashSet::with_capacity(fenced.len());
    if !fenced
        .iter()
        .all(|(_, s, k, _)| seen.insert((*s, k.as_str())))
    {
        return Ok(None);
    }
    // Sorted by key, so concurrent batches lock the fence rows in one order and
    // cannot deadlock each other.
    fenced.sort_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
    let sources: Vec<&str> = fenced.iter().map(|f| f.1).collect();
    let keys: Vec<&str> = fenced.iter().map(|f| f.2.as_str()).collect();
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
    let advanced: HashSet<(String, String)> = advanced.into_iter().collect();
    let mut stale = vec![false; total];
    for (index, source, key, _) in fenced {
        stale[index] = !advanced.contains(&(source.to_owned(), key));
    }
    Ok(Some(stale))
}
