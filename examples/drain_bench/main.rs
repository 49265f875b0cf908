//! Drain benchmark (run by `bench/drain.sh`): pre-inserts N outbox rows into a fresh
//! database, runs the release `worker` against a local stand-in for WebEngage until
//! every row is delivered, once without limits and once at WebEngage's default limits,
//! and prints rows/s, the share of the bulk quota used, and the ratio to the baseline.
//!
//! Usage: `drain_bench BINARY [ROWS]`; `TEST_DATABASE_URL` names the Postgres server.
//! `drain_bench BINARY --database URL` instead delivers what an existing database's
//! outbox holds (e.g. the load `bench/run.sh` ingested), without limits.
//!
//! `drain_bench BINARY --quota-use WINDOWS` (run by `bench/backlog.sh`): both bulk
//! endpoints queued for WINDOWS quota windows at the default quotas, against a stand-in
//! that enforces each endpoint's quota per window as WebEngage does (a 429 past it); the
//! window is `BRIDGE_RATE_WINDOW` (env `WINDOW`, default 20s) instead of a minute. Prints
//! the records each endpoint took in each full window as a share of its quota, and the
//! 429s. `drain_bench BINARY --coalesce LEADS`: each lead created and updated three times
//! while delivery waits (every tenth with an event between its second and third update),
//! then drained; prints the user records WebEngage got per lead and checks each lead's
//! records against the updates applied in order.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

mod backlog;

/// WebEngage's default bulk quota (requests per minute), which the limited run keeps.
const BULK_PER_MIN: f64 = 500.0;
/// Quotas no run reaches: the baseline, and runs that measure something else.
const UNLIMITED: [(&str, &str); 3] = [
    ("WEBENGAGE_LIMIT_USERS_PER_MIN", "100000000"),
    ("WEBENGAGE_LIMIT_EVENTS_PER_MIN", "100000000"),
    ("WEBENGAGE_LIMIT_BULK_PER_MIN", "100000000"),
];
/// Records one bulk call carries at most.
const BULK_RECORDS: u64 = 25;

/// What the stand-in WebEngage counted, and the quota it enforces.
#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    records: AtomicU64,
    /// Calls per clock minute: WebEngage's quota is per minute.
    per_minute: Mutex<BTreeMap<u64, u64>>,
    /// Calls answered 429 because an endpoint's quota for the window was spent.
    refused: AtomicU64,
    /// Per (endpoint, window): calls and records taken. Windows are `window_ms` long
    /// from the epoch, as the bridge's `rate_windows` count them.
    windows: Mutex<BTreeMap<(String, u64), (u64, u64)>>,
    /// `Some((window_ms, calls))` enforces `calls` per endpoint and window.
    quota: Mutex<Option<(u64, u64)>>,
    /// Every body received, in arrival order, when the run checks them.
    bodies: Mutex<Option<Vec<serde_json::Value>>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers every POST with `queued`, as fast as it can, counting calls and records;
/// past an endpoint's quota for the window, 429.
async fn queued(
    counts: web::Data<Counts>,
    request: actix_web::HttpRequest,
    body: web::Json<serde_json::Value>,
) -> HttpResponse {
    let records = ["users", "events"]
        .iter()
        .find_map(|k| body.get(*k).and_then(|v| v.as_array()).map(Vec::len))
        .unwrap_or(1) as u64;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let endpoint = request
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let quota = *locked(&counts.quota);
    let window_ms = quota.map_or(60_000, |(w, _)| w);
    {
        let mut windows = locked(&counts.windows);
        let taken = windows.entry((endpoint, now_ms / window_ms)).or_default();
        if quota.is_some_and(|(_, calls)| taken.0 >= calls) {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            return HttpResponse::TooManyRequests().finish();
        }
        taken.0 += 1;
        taken.1 += records;
    }
    counts.calls.fetch_add(1, Ordering::Relaxed);
    *locked(&counts.per_minute)
        .entry(now_ms / 60_000)
        .or_default() += 1;
    counts.records.fetch_add(records, Ordering::Relaxed);
    if let Some(bodies) = locked(&counts.bodies).as_mut() {
        bodies.push(body.into_inner());
    }
    HttpResponse::Created().json(serde_json::json!({"response": {"status": "queued"}}))
}

struct Run {
    seconds: f64,
    calls: u64,
    records: u64,
    busiest_minute: u64,
}

impl Run {
    fn rows_per_second(&self, rows: u64) -> f64 {
        rows as f64 / self.seconds
    }

    /// Calls made per minute as a share of the bulk quota.
    fn quota_share(&self) -> f64 {
        self.calls as f64 / (self.seconds / 60.0) / BULK_PER_MIN
    }
}

fn main() -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .context("usage: drain_bench BINARY [ROWS | --database URL]")?;
    let next = args.next();
    let mut existing = None;
    let mut special = None;
    match next.as_deref() {
        Some("--database") => existing = Some(args.next().context("--database needs a URL")?),
        Some(mode @ ("--quota-use" | "--coalesce")) => {
            let n: u64 = args
                .next()
                .context("--quota-use and --coalesce need a number")?
                .parse()?;
            special = Some((mode.to_owned(), n));
        }
        _ => {}
    }
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());

    let counts = web::Data::new(Counts::default());
    let shared = counts.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .app_data(web::JsonConfig::default().limit(16 << 20))
            .default_service(web::post().to(queued))
    })
    .workers(2)
    .bind("127.0.0.1:0")?;
    let address = format!("http://{}", server.addrs()[0]);
    actix_web::rt::spawn(server.run());

    if let Some((mode, n)) = special {
        return match mode.as_str() {
            "--quota-use" => backlog::quota_use(&binary, &admin, &address, n, &counts).await,
            _ => backlog::coalesce(&binary, &admin, &address, n, &counts).await,
        };
    }
    if let Some(url) = existing {
        let pool = webengage_bridge::store::connect(&url).await?;
        let rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status <> 'delivered'")
                .fetch_one(&pool)
                .await?;
        let rows = rows as u64;
        println!("delivering the {rows} outbox rows already in the database (bulk on)");
        let run = run_worker(&binary, &pool, &url, &address, rows, &UNLIMITED, &counts).await?;
        report("ingested load", rows, &run, &run);
        return Ok(());
    }
    let rows: u64 = next.map_or(Ok(20_000), |n| n.parse())?;
    println!("draining {rows} rows (half users, half events; bulk on)");
    let base = drain(&binary, &admin, &address, rows, &UNLIMITED, &counts).await?;
    report("no limits", rows, &base, &base);
    let limited = drain(&binary, &admin, &address, rows, &[], &counts).await?;
    report("default limits", rows, &limited, &base);
    Ok(())
}

fn report(name: &str, rows: u64, run: &Run, base: &Run) {
    println!(
        "{name:>15}: {:>6.1} s  {:>6.0} rows/s  ({:.3}x baseline)  {} calls, {} records; {:.0}% of the {BULK_PER_MIN} bulk calls/min quota on average over the run, busiest clock minute {} calls ({:.0}%)",
        run.seconds,
        run.rows_per_second(rows),
        run.rows_per_second(rows) / base.rows_per_second(rows),
        run.calls,
        run.records,
        run.quota_share() * 100.0,
        run.busiest_minute,
        run.busiest_minute as f64 / BULK_PER_MIN * 100.0,
    );
}

/// One run on a fresh database: insert, start the worker, wait for the last delivery.
async fn drain(
    binary: &str,
    admin: &str,
    webengage: &str,
    rows: u64,
    env: &[(&str, &str)],
    counts: &Counts,
) -> anyhow::Result<Run> {
    let db = BenchDatabase::create(admin).await?;
    insert(&db.pool, rows).await?;
    let run = run_worker(binary, &db.pool, &db.url, webengage, rows, env, counts).await?;
    db.drop().await?;
    Ok(run)
}

/// A fresh, migrated database for one run.
struct BenchDatabase {
    admin: PgConnection,
    name: String,
    url: String,
    pool: PgPool,
}

impl BenchDatabase {
    async fn create(admin: &str) -> anyhow::Result<Self> {
        let name = format!("drain_bench_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let url = format!("{}/{name}", admin.rsplit_once('/').context("a URL")?.0);
        let pool = webengage_bridge::store::connect(&url).await?;
        webengage_bridge::store::migrate(&pool).await?;
        Ok(BenchDatabase {
            admin: conn,
            name,
            url,
            pool,
        })
    }

    async fn drop(mut self) -> anyhow::Result<()> {
        self.pool.close().await;
        sqlx::query(&format!("DROP DATABASE {}", self.name))
            .execute(&mut self.admin)
            .await?;
        Ok(())
    }
}

/// Starts the worker on `url` and waits until `rows` rows are delivered.
async fn run_worker(
    binary: &str,
    pool: &PgPool,
    url: &str,
    webengage: &str,
    rows: u64,
    env: &[(&str, &str)],
    counts: &Counts,
) -> anyhow::Result<Run> {
    counts.calls.store(0, Ordering::Relaxed);
    counts.records.store(0, Ordering::Relaxed);
    counts.refused.store(0, Ordering::Relaxed);
    locked(&counts.per_minute).clear();
    locked(&counts.windows).clear();

    let started = Instant::now();
    let mut worker = Worker(spawn_worker(binary, url, webengage, env)?);
    wait_delivered(pool, rows, &mut worker.0).await?;
    let seconds = started.elapsed().as_secs_f64();
    drop(worker);
    Ok(Run {
        seconds,
        calls: counts.calls.load(Ordering::Relaxed),
        records: counts.records.load(Ordering::Relaxed),
        busiest_minute: locked(&counts.per_minute)
            .values()
            .copied()
            .max()
            .unwrap_or(0),
    })
}

/// Half user rows, half event rows, one user each (no ordering holds anything back).
async fn insert(pool: &PgPool, rows: u64) -> anyhow::Result<()> {
    let all: Vec<u64> = (0..rows).collect();
    for chunk in all.chunks(5000) {
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::new_v4()).collect();
        let users: Vec<String> = chunk.iter().map(|n| format!("bench-{n}")).collect();
        sqlx::query(
            "INSERT INTO outbox (request_id, source, rule, kind, user_id, body)
             SELECT r, 'bench', 'bench', (CASE WHEN n % 2 = 0 THEN 'user' ELSE 'event' END)::operation_kind, u,
                    CASE WHEN n % 2 = 0 THEN jsonb_build_object('userId', u, 'firstName', 'Asha')
                         ELSE jsonb_build_object('userId', u, 'eventName', 'Lead Created') END
             FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS t(r, u, n)",
        )
        .bind(&ids)
        .bind(&users)
        .execute(pool)
        .await?;
    }
    Ok(())
}

fn spawn_worker(
    binary: &str,
    url: &str,
    webengage: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<Child> {
    Command::new(binary)
        .arg("worker")
        .env("DATABASE_URL", url)
        .env("WEBENGAGE_BASE_URL", webengage)
        .env("WEBENGAGE_LICENSE_CODE", "bench")
        .env("WEBENGAGE_API_KEY", "bench-key")
        // Several workers on one host: none binds the default health address.
        .env("BRIDGE_WORKER_LISTEN", "off")
        .env(
            "RUST_LOG",
            std::env::var("DRAIN_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {binary}"))
}

/// Polls for open rows through the partial indexes that hold only those: counting the
/// delivered ones scanned the whole table ten times a second, and with a large load
/// that scan, not the worker, decided the drain rate (1.4 million rows: 3,000 rows/s).
async fn wait_delivered(pool: &PgPool, rows: u64, child: &mut Child) -> anyhow::Result<()> {
    loop {
        let open: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE status IN ('pending', 'in_flight'))",
        )
        .fetch_one(pool)
        .await?;
        if !open {
            let delivered: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'delivered'")
                    .fetch_one(pool)
                    .await?;
            anyhow::ensure!(
                delivered as u64 >= rows,
                "only {delivered} of {rows} rows were delivered"
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the worker exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills the worker process when the run ends, however it ends.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
