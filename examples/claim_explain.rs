//! The claim's plan on a large backlog (run by `bench/claim.sh`): fills a fresh
//! database with ROWS pending outbox rows (half users, half events, a user each), then
//! prints `EXPLAIN (ANALYZE, BUFFERS)` of the worker's claim statement
//! (`store::outbox::prepare_claim`, the statement itself, not a copy) with a generic plan,
//! as the worker's prepared statement gets, for first attempts and for retries. Each
//! claim runs in a transaction that is rolled back, so every case sees the same rows.
//!
//! Then, as midway through a drain, nine rows in ten are delivered while the planner's
//! statistics still say they are pending (autovacuum is off for the table), and the
//! first-attempts claim is explained twice more: the first claim after that, which marks
//! the delivered rows' index entries dead, and the next.
//!
//! Usage: `claim_explain [ROWS]` (default 1,000,000); `TEST_DATABASE_URL` names the
//! Postgres server. `--blocked-heads` instead puts every user's first row in flight
//! with the rest of the user's rows queued behind it: the shape after an outage.

use anyhow::Context;
use sqlx::{Connection, PgConnection, PgPool, Row};
use webengage_bridge::store::{self, outbox::Due};

/// The most rows a bulk worker claims at once: 8 calls of 25 (defaults).
const CLAIM_LIMIT: i64 = 200;
const DATABASE: &str = "wb_claim_explain";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut rows: i64 = 1_000_000;
    let mut blocked_heads = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--blocked-heads" => blocked_heads = true,
            n => {
                rows = n
                    .parse()
                    .context("usage: claim_explain [ROWS] [--blocked-heads]")?
            }
        }
    }
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let pool = fresh_database(&admin).await?;
    sqlx::query("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        .execute(&pool)
        .await?;
    let users = if blocked_heads { rows / 10 } else { rows };
    fill(&pool, rows, users).await?;
    if blocked_heads {
        put_heads_in_flight(&pool).await?;
    }
    sqlx::query("VACUUM ANALYZE outbox").execute(&pool).await?;
    println!(
        "{rows} pending rows, {users} users{}",
        if blocked_heads {
            ", every user's first row in flight"
        } else {
            ""
        }
    );
    for (title, which) in [
        ("first attempts, kind `user`", Due::Fresh),
        ("retries, kind `user`", Due::Retries),
    ] {
        print_plan(&pool, title, which).await?;
    }
    if !blocked_heads {
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
            print_plan(&pool, &title, Due::Fresh).await?;
        }
    }
    Ok(())
}

async fn print_plan(pool: &PgPool, title: &str, which: Due) -> anyhow::Result<()> {
    println!("\n== {title}, LIMIT {CLAIM_LIMIT}, generic plan\n");
    for line in explain_claim(pool, which).await? {
        println!("{line}");
    }
    Ok(())
}

async fn fresh_database(admin: &str) -> anyhow::Result<PgPool> {
    let mut conn = PgConnection::connect(admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {DATABASE}"))
        .execute(&mut conn)
        .await?;
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

/// Rows in id order cycle over `users`: user n's rows are n, n + users, n + 2 users...
async fn fill(pool: &PgPool, rows: i64, users: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO outbox (request_id, source, rule, kind, user_id, body)
         SELECT gen_random_uuid(), 'bench', 'bench',
                (CASE WHEN n % 2 = 0 THEN 'user' ELSE 'event' END)::operation_kind, 'user-' || (n % $2),
                json_build_object('userId', 'user-' || (n % $2))
         FROM generate_series(0, $1 - 1) AS n",
    )
    .bind(rows)
    .bind(users)
    .execute(pool)
    .await?;
    Ok(())
}

async fn put_heads_in_flight(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE outbox SET status = 'in_flight', lease_until = now() + interval '1 hour'
         WHERE id IN (SELECT min(id) FROM outbox GROUP BY user_id)",
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
