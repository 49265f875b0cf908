//! The claim's plan on a large backlog (run by `bench/claim.sh` and `bench/backlog.sh`):
//! fills a fresh database with ROWS open outbox rows (half users, half events) in one of
//! three shapes, then prints `EXPLAIN (ANALYZE, BUFFERS)` of the worker's claim statement
//! (`store::outbox::prepare_claim`, the statement itself, not a copy) with a generic plan,
//! as the worker's prepared statement gets, for first attempts and for retries, and a
//! last line with the execution times (each shape's claims run twice: the first may read
//! the index from disk). Each claim runs in a transaction that is rolled
//! back, so every case sees the same rows.
//!
//! Shapes (`--shape`):
//! - `fresh` (default): one user per row, every row a head never tried. Then, as midway
//!   through a drain, nine rows in ten are delivered while the planner's statistics
//!   still say they are pending (autovacuum is off for the table), and the
//!   first-attempts claim is explained twice more.
//! - `retries`: one user per row, every row tried once and due again.
//! - `blocked`: ROWS / 10 users with ten rows each, every user's head in flight (half of
//!   them) or waiting for a retry an hour away (the other half): the shape after an
//!   outage, where nothing is claimable but 1,000 fresh users that arrived after it.
//!
//! Usage: `claim_explain [ROWS] [--shape fresh|retries|blocked]` (default 1,000,000
//! rows); `TEST_DATABASE_URL` names the Postgres server. The database is dropped after.

use anyhow::Context;
use sqlx::{Connection, PgConnection, PgPool, Row};
use webengage_bridge::store::{self, outbox::Due};

/// The most rows a bulk worker claims at once: 8 calls of 25 (defaults).
const CLAIM_LIMIT: i64 = 200;
const DATABASE: &str = "wb_claim_explain";
/// Users that arrive after the outage in the `blocked` shape: what a claim should find.
const LATE_USERS: i64 = 1_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Fresh,
    Retries,
    Blocked,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    const USAGE: &str = "usage: claim_explain [ROWS] [--shape fresh|retries|blocked]";
    let mut rows: i64 = 1_000_000;
    let mut shape = Shape::Fresh;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--shape" => {
                shape = match args.next().as_deref() {
                    Some("fresh") => Shape::Fresh,
                    Some("retries") => Shape::Retries,
                    Some("blocked") => Shape::Blocked,
                    _ => anyhow::bail!(USAGE),
                }
            }
            // The shape of the claim bench before `--shape`.
            "--blocked-heads" => shape = Shape::Blocked,
            n => rows = n.parse().context(USAGE)?,
        }
    }
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let pool = fresh_database(&admin).await?;
    sqlx::query("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        .execute(&pool)
        .await?;
    let description = match shape {
        Shape::Fresh => {
            fill(&pool, rows, rows).await?;
            format!("{rows} pending rows, one user each, never tried")
        }
        Shape::Retries => {
            fill(&pool, rows, rows).await?;
            sqlx::query(
                "UPDATE outbox SET attempts = 1, next_attempt_at = created_at + interval '1 second'",
            )
            .execute(&pool)
            .await?;
            format!("{rows} pending rows, one user each, every one tried once and due again")
        }
        Shape::Blocked => {
            let users = rows / 10;
            fill(&pool, rows, users).await?;
            block_heads(&pool).await?;
            fill(&pool, LATE_USERS, LATE_USERS).await?;
            format!(
                "{rows} open rows of {users} users whose heads are in flight or wait an hour for a retry, then {LATE_USERS} fresh users"
            )
        }
    };
    sqlx::query("VACUUM ANALYZE outbox").execute(&pool).await?;
    println!("{description}");
    let mut timings: Vec<(&str, String)> = Vec::new();
    for (title, which) in [
        ("first attempts, kind `user`", Due::Fresh),
        ("retries, kind `user`", Due::Retries),
    ] {
        // Twice: the first run may read the index from disk; a worker claims all the time.
        let cold = print_plan(&pool, title, which).await?;
        let warm = print_plan(&pool, &format!("{title}, again"), which).await?;
        timings.push((title, format!("{cold}, then {warm}")));
    }
    if shape == Shape::Fresh {
        sqlx::query("UPDATE outbox SET status = 'delivered', attempts = 1 WHERE id <= $1")
            .bind(rows / 10 * 9)
            .execute(&pool)
            .await?;
        // The first claim after marks the index entries of delivered rows it passes as
        // dead; the ones after it skip them until a vacuum removes them.
        for claim in ["the first claim", "the next claim"] {
            let title = format!(
                "midway through a drain (9 rows in 10 delivered, statistics from before), {claim}: first attempts, kind `user`"
            );
            let time = print_plan(&pool, &title, Due::Fresh).await?;
            timings.push((claim, time));
        }
    }
    pool.close().await;
    drop_database(&admin).await?;
    let summary: Vec<String> = timings
        .iter()
        .map(|(title, time)| format!("{title}: {time}"))
        .collect();
    println!("\nexecution times: {}", summary.join("; "));
    Ok(())
}

/// Prints the plan and returns its "Execution Time" line's value.
async fn print_plan(pool: &PgPool, title: &str, which: Due) -> anyhow::Result<String> {
    println!("\n== {title}, LIMIT {CLAIM_LIMIT}, generic plan\n");
    let plan = explain_claim(pool, which).await?;
    for line in &plan {
        println!("{line}");
    }
    Ok(plan
        .iter()
        .find_map(|l| l.strip_prefix("Execution Time: "))
        .unwrap_or("?")
        .to_owned())
}

async fn drop_database(admin: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin).await?;
    // FORCE: a connection the pool is still closing must not keep 10 GB of rows on disk.
    sqlx::query(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

async fn fresh_database(admin: &str) -> anyhow::Result<PgPool> {
    drop_database(admin).await?;
    let url = format!(
        "{}/{DATABASE}",
        admin
            .rsplit_once('/')
            .context("TEST_DATABASE_URL has no database")?
            .0
    );
    let pool = store::connect_creating(&url).await?;
    store::migrate(&pool).await?;
    Ok(pool)
}

/// Rows in id order cycle over `users`: user n's rows are n, n + users, n + 2 users...;
/// each user's first row is its head, as `store::outbox` inserts them. Users are named
/// after the rows already there, so a second fill adds new users.
async fn fill(pool: &PgPool, rows: i64, users: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO outbox (request_id, source, rule, kind, user_id, body, head)
         SELECT gen_random_uuid(), 'bench', 'bench',
                (CASE WHEN n % 2 = 0 THEN 'user' ELSE 'event' END)::operation_kind, u,
                json_build_object('userId', u), n < $2
         FROM generate_series(0, $1 - 1) AS n,
              LATERAL (SELECT 'user-' || (n % $2) || '-' || (SELECT count(*) FROM outbox) AS u) AS named",
    )
    .bind(rows)
    .bind(users)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every head in flight (even users) or waiting an hour for its retry (odd users).
async fn block_heads(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE outbox SET status = 'in_flight', lease_until = now() + interval '1 hour'
         WHERE head AND id % 2 = 0",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "UPDATE outbox SET attempts = 1, next_attempt_at = now() + interval '1 hour'
         WHERE head AND status = 'pending'",
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn explain_claim(pool: &PgPool, which: Due) -> anyhow::Result<Vec<String>> {
    let mut tx = pool.begin().await?;
    // What a prepared statement gets after its first executions.
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&store::outbox::prepare_claim("claim", which))
        .execute(&mut *tx)
        .await?;
    let plan = sqlx::query(&format!(
        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim({CLAIM_LIMIT}, interval '30 seconds', gen_random_uuid(), 'user')"
    ))
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| row.get::<String, _>(0))
    .collect();
    // Prepared statements outlive transactions.
    sqlx::query("DEALLOCATE claim").execute(&mut *tx).await?;
    tx.rollback().await?;
    Ok(plan)
}
