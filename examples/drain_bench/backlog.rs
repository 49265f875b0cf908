//! The backlog runs of `drain_bench` (`bench/backlog.sh`): the share of each bulk
//! endpoint's quota a deep backlog uses, and coalescing of queued user updates.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{BULK_PER_MIN, BULK_RECORDS, BenchDatabase, Counts, UNLIMITED, locked};

/// Both bulk endpoints queued for `windows` full quota windows at the default quotas,
/// against a stand-in that refuses a call past an endpoint's quota for the window.
pub async fn quota_use(
    binary: &str,
    admin: &str,
    webengage: &str,
    windows: u64,
    counts: &Counts,
) -> anyhow::Result<()> {
    let window_s: u64 = std::env::var("WINDOW_SECONDS").map_or(Ok(20), |w| w.parse())?;
    let quota = BULK_PER_MIN as u64;
    let per_window = quota * BULK_RECORDS;
    // The first and last windows are partial: queue enough for two more.
    let rows = 2 * per_window * (windows + 2);
    *locked(&counts.quota) = Some((window_s * 1000, quota));
    let db = BenchDatabase::create(admin).await?;
    super::insert(&db.pool, rows).await?;
    println!(
        "quota use: {rows} rows (half users, half events, a user each), default quotas ({quota} bulk calls of {BULK_RECORDS} per endpoint), {window_s}s windows"
    );
    let window = format!("{window_s}s");
    let env = [("BRIDGE_RATE_WINDOW", window.as_str())];
    let run = super::run_worker(binary, &db.pool, &db.url, webengage, rows, &env, counts).await?;
    db.drop().await?;
    *locked(&counts.quota) = None;

    let taken = locked(&counts.windows).clone();
    let mut shares = Vec::new();
    for endpoint in ["bulk-users", "bulk-events"] {
        let of_endpoint: Vec<(u64, u64)> = taken
            .iter()
            .filter(|((e, _), _)| e == endpoint)
            .map(|((_, w), (_, records))| (*w, *records))
            .collect();
        // Full windows only: not the first, in which the run started, nor the last two,
        // in which the queue ran dry.
        let full = of_endpoint
            .get(1..of_endpoint.len().saturating_sub(2))
            .unwrap_or(&[]);
        for (window, records) in full {
            let share = *records as f64 / per_window as f64;
            shares.push(share);
            println!(
                "  {endpoint:>11} window {window}: {records:>6} records = {:.1}% of {per_window}",
                share * 100.0
            );
        }
    }
    let lowest = shares.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "quota use: {:.1} s, {} calls, lowest full window {:.1}% of its quota, 429s from the stand-in: {}",
        run.seconds,
        run.calls,
        lowest * 100.0,
        counts.refused.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Each lead created and updated three times while delivery waits (every tenth with an
/// event between its second and third update), then drained without limits.
pub async fn coalesce(
    binary: &str,
    admin: &str,
    webengage: &str,
    leads: u64,
    counts: &Counts,
) -> anyhow::Result<()> {
    let db = BenchDatabase::create(admin).await?;
    let rows = queue_leads(&db.pool, leads).await?;
    *locked(&counts.bodies) = Some(Vec::new());
    let run = super::run_worker(
        binary, &db.pool, &db.url, webengage, rows, &UNLIMITED, counts,
    )
    .await?;
    db.drop().await?;

    let bodies = locked(&counts.bodies).take().unwrap_or_default();
    let mut received: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for body in &bodies {
        // A bulk call carries `users` or `events`; a single call (a lone due row) is one.
        let items = ["users", "events"]
            .iter()
            .find_map(|key| body.get(*key).and_then(Value::as_array))
            .map_or_else(|| vec![body], |items| items.iter().collect());
        for item in items {
            let user = item["userId"].as_str().unwrap_or_default().to_owned();
            received.entry(user).or_default().push(item.clone());
        }
    }
    let user_records: usize = received
        .values()
        .map(|items| {
            items
                .iter()
                .filter(|i| i.get("eventName").is_none())
                .count()
        })
        .sum();
    let wrong: Vec<u64> = (0..leads)
        .filter(|n| received.get(&lead_id(*n)) != Some(&expected(*n)))
        .collect();
    if let Some(n) = wrong.first() {
        println!(
            "lead {n}: expected {}\n got {:?}",
            Value::Array(expected(*n)),
            received.get(&lead_id(*n))
        );
    }
    println!(
        "coalescing: {leads} leads, {rows} queued rows delivered in {:.1} s as {user_records} user records in {} calls ({:.2} user records per lead); {} leads whose records differ from the ordered merge",
        run.seconds,
        run.calls,
        user_records as f64 / leads as f64,
        wrong.len()
    );
    anyhow::ensure!(
        wrong.is_empty(),
        "coalesced bodies differ from the ordered merge"
    );
    Ok(())
}

fn lead_id(n: u64) -> String {
    format!("lead-{n}")
}

/// The rows of lead `n` in the order the CRM sent them.
fn lead_rows(n: u64) -> Vec<Value> {
    let user = lead_id(n);
    let mut rows = vec![
        json!({"userId": user, "firstName": "Asha", "attributes": {"stage": "new", "source": "web"}}),
        json!({"userId": user, "lastName": "Rao", "attributes": {"stage": "contacted"}}),
        json!({"userId": user, "attributes": {"stage": "qualified", "score": 10}}),
        json!({"userId": user, "email": format!("{user}@example.com"), "attributes": {"score": 20}}),
    ];
    if n.is_multiple_of(10) {
        rows.insert(3, json!({"userId": user, "eventName": "Call Logged"}));
    }
    rows
}

/// What WebEngage should get for lead `n`: each run of user updates merged in order
/// (later values win per field, `attributes` per key); events in their place.
fn expected(n: u64) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut run: Option<Value> = None;
    for row in lead_rows(n) {
        if row.get("eventName").is_some() {
            out.extend(run.take());
            out.push(row);
            continue;
        }
        run = Some(match run.take() {
            None => row,
            Some(mut merged) => {
                for (field, value) in row.as_object().into_iter().flatten() {
                    match (field.as_str(), merged.get_mut("attributes")) {
                        ("attributes", Some(Value::Object(into))) => {
                            for (k, v) in value.as_object().into_iter().flatten() {
                                into.insert(k.clone(), v.clone());
                            }
                        }
                        _ => {
                            merged[field] = value.clone();
                        }
                    }
                }
                merged
            }
        });
    }
    out.extend(run);
    out
}

/// Queues every lead's rows, each user's first row its head. Returns the row count.
async fn queue_leads(pool: &PgPool, leads: u64) -> anyhow::Result<u64> {
    let mut rows = 0;
    for chunk in (0..leads).collect::<Vec<_>>().chunks(2000) {
        let (mut kinds, mut users, mut bodies, mut heads) = (vec![], vec![], vec![], vec![]);
        for n in chunk {
            for (i, body) in lead_rows(*n).into_iter().enumerate() {
                kinds.push(if body.get("eventName").is_some() {
                    "event"
                } else {
                    "user"
                });
                users.push(lead_id(*n));
                bodies.push(body);
                heads.push(i == 0);
            }
        }
        let ids: Vec<Uuid> = kinds.iter().map(|_| Uuid::new_v4()).collect();
        rows += kinds.len() as u64;
        sqlx::query(
            "INSERT INTO outbox (request_id, source, rule, kind, user_id, body, head)
             SELECT r, 'bench', 'bench', k::operation_kind, u, b, h
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bool[])
                  WITH ORDINALITY AS t(r, k, u, b, h, n)
             ORDER BY n",
        )
        .bind(&ids)
        .bind(&kinds)
        .bind(&users)
        .bind(&bodies)
        .bind(&heads)
        .execute(pool)
        .await?;
    }
    Ok(rows)
}
