//! An import stopped or refused midway: a process killed (SIGKILL) or interrupted
//! (Ctrl-C) mid-file, then run again with the same command, continues after its last
//! committed chunk and stores each row exactly once, its rejects listed once; a row
//! Postgres refuses is stored alone as `failed`, its chunk's other rows as usual.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{TestDb, example_mappings, refuse_inbound_rows};
use crate::import::{SF_HEADER, sf_row, write};
use crate::import::{options, run};

/// Rows in the file: enough that the debug binary is still reading when it is stopped.
const ROWS: usize = 30_000;
/// Every this many rows one has a bad e-mail, so the rejects file is resumed too.
const BAD_EVERY: usize = 100;

fn import(db: &TestDb, file: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_webengage-bridge"));
    command
        .args(["import", "--quiet", "--source", "salesforce"])
        .arg(file)
        .env("DATABASE_URL", &db.url)
        .env("BRIDGE_MAPPINGS_DIR", example_mappings())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The import's committed progress (`rows_done`) and state.
async fn progress(db: &TestDb) -> Option<(i64, String)> {
    sqlx::query_as("SELECT rows_done, state::text FROM imports ORDER BY id DESC LIMIT 1")
        .fetch_optional(&db.pool)
        .await
        .unwrap()
}

/// Waits until the running import has committed past `after` rows.
async fn wait_past(db: &TestDb, child: &mut Child, after: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some((done, state)) = progress(db).await {
            assert_eq!(
                state, "running",
                "the import ended before it could be stopped: make ROWS larger"
            );
            if done > after {
                return done;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import exited early"
        );
        assert!(Instant::now() < deadline, "no progress past row {after}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

/// What is stored must be exactly what the import's committed counts say.
async fn assert_stored_matches_counts(db: &TestDb) {
    let (accepted, duplicates): (i64, i64) =
        sqlx::query_as("SELECT accepted, duplicates FROM imports ORDER BY id DESC LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        duplicates, 0,
        "a resumed import reads no committed row again"
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM inbound_records").await,
        accepted
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM outbox").await,
        2 * accepted,
        "a user and an event per lead"
    );
}

#[tokio::test]
async fn a_killed_or_interrupted_import_resumes_storing_each_row_once() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![SF_HEADER.to_owned()];
    for i in 0..ROWS {
        let email = if i % BAD_EVERY == 7 {
            format!("lead{i}-at-example.com")
        } else {
            format!("lead{i}@example.com")
        };
        lines.push(sf_row(
            &format!("00Q5j{i:010}AAA"),
            &email,
            "2024-01-15T10:30:04.000Z",
        ));
    }
    let file = write(dir.path(), "leads.csv", &lines);

    // kill -9 once a chunk is committed: the chunks in flight are rolled back.
    let mut killed = import(&db, &file).spawn().unwrap();
    let first = wait_past(&db, &mut killed, 0).await;
    killed.kill().unwrap();
    killed.wait().unwrap();
    let (done, state) = progress(&db).await.unwrap();
    assert_eq!(state, "running", "a killed import stays open");
    assert!(done >= first && (done as usize) < ROWS);
    assert_stored_matches_counts(&db).await;

    // Ctrl-C further on: the process says how to continue.
    let mut interrupted = import(&db, &file).spawn().unwrap();
    let second = wait_past(&db, &mut interrupted, done).await;
    let pid = interrupted.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = interrupted.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("interrupted; run the same command to continue"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (done, _) = progress(&db).await.unwrap();
    assert!(done >= second && (done as usize) < ROWS);
    assert_stored_matches_counts(&db).await;

    let rest = import(&db, &file).output().unwrap();
    let stdout = String::from_utf8_lossy(&rest.stdout);
    assert!(rest.status.success(), "{stdout}");
    assert!(stdout.contains("done"), "{stdout}");
    let (done, state) = progress(&db).await.unwrap();
    assert_eq!((done as usize, state.as_str()), (ROWS, "finished"));
    assert_stored_matches_counts(&db).await;
    let bad = ROWS / BAD_EVERY;
    assert_eq!(
        count(&db, "SELECT count(*) FROM inbound_records").await as usize,
        ROWS - bad,
        "every good row stored once"
    );
    let rejects = std::fs::read_to_string(dir.path().join("leads.csv.rejects.csv")).unwrap();
    let mut listed: Vec<&str> = rejects
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(listed.len(), bad, "each bad row listed once:\n{rejects}");
    listed.dedup();
    assert_eq!(listed.len(), bad);
}

#[tokio::test]
async fn a_row_postgres_refuses_is_stored_failed_and_its_chunk_goes_on() {
    let db = TestDb::new().await;
    refuse_inbound_rows(&db.pool, "refuse-me", false).await;
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = [("1", "a"), ("2", "refuse-me"), ("3", "c")]
        .iter()
        .map(|(i, name)| {
            sf_row(
                &format!("00Q5j000000000{i}AAA"),
                &format!("{name}@example.com"),
                "2024-01-15T10:30:04.000Z",
            )
        })
        .collect();
    let file = write(
        dir.path(),
        "leads.csv",
        &[&[SF_HEADER.to_owned()], &rows[..]].concat(),
    );
    let summary = run(&db.pool, &options("salesforce", &[&file])).await;
    assert_eq!(
        (summary.counts.accepted, summary.counts.rejected),
        (2, 1),
        "the refused row counts as rejected, its neighbours as accepted"
    );
    let stored: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT i.payload->'sObject'->>'Email', i.status::text, i.error,
                (SELECT count(*) FROM outbox o WHERE o.inbound_id = i.id)
         FROM inbound_records i ORDER BY i.payload->'sObject'->>'Id'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!((stored[0].1.as_str(), stored[0].3), ("mapped", 2));
    assert_eq!((stored[2].1.as_str(), stored[2].3), ("mapped", 2));
    let (email, status, error, outbox) = &stored[1];
    assert_eq!(
        (email.as_str(), status.as_str(), *outbox),
        ("refuse-me@example.com", "failed", 0)
    );
    let error = error.as_deref().unwrap();
    assert!(
        error.contains("Postgres refused the record")
            && error.contains("the test refuses this row"),
        "{error}"
    );
}

#[tokio::test]
async fn chunks_not_committed_after_a_lost_lock_wait_are_stored_again() {
    let db = TestDb::new().await;
    // The first insert of the marked row fails as a `lock_timeout` would (a sequence
    // counts outside the transaction that rolls back).
    sqlx::raw_sql(
        r#"CREATE SEQUENCE lost_waits;
           CREATE FUNCTION lose_a_lock_wait() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF NEW.payload::text LIKE '%wait-for-me%' AND nextval('lost_waits') = 1 THEN
               RAISE EXCEPTION 'canceling statement due to lock timeout' USING ERRCODE = '55P03';
             END IF;
             RETURN NEW;
           END $$;
           CREATE TRIGGER lose_a_lock_wait BEFORE INSERT ON inbound_records
             FOR EACH ROW EXECUTE FUNCTION lose_a_lock_wait();"#,
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rows = 4 * webengage_bridge::import::BATCH_ROWS;
    let mut lines = vec![SF_HEADER.to_owned()];
    for i in 0..rows {
        // In the second chunk, so that the first is in flight beside it.
        let name = if i == 700 {
            "wait-for-me".to_owned()
        } else {
            format!("lead{i}")
        };
        lines.push(sf_row(
            &format!("00Q5j{i:010}AAA"),
            &format!("{name}@example.com"),
            "2024-01-15T10:30:04.000Z",
        ));
    }
    let file = write(dir.path(), "leads.csv", &lines);
    let summary = run(&db.pool, &options("salesforce", &[&file])).await;
    assert_eq!(
        (summary.counts.accepted, summary.counts.duplicates),
        (rows as u64, 0)
    );
    let waits: i64 = count(&db, "SELECT last_value FROM lost_waits").await;
    assert_eq!(waits, 2, "the marked row's chunk was stored a second time");
    let (done, state) = progress(&db).await.unwrap();
    assert_eq!((done as usize, state.as_str()), (rows, "finished"));
    assert_stored_matches_counts(&db).await;
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT dedupe_key) FROM inbound_records"
        )
        .await as usize,
        rows
    );
}
