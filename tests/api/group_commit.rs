//! Group commit: many requests share a transaction, yet each gets its own answer, and
//! dedupe, the stale fence and failures stay per request.

use serde_json::{Value, json};
use webengage_bridge::ingest::group_commit::{GroupCommit, GroupCommitConfig};
use webengage_bridge::mapping::{IncomingRecord, MappedRecord, RecordStatus, RecordVersion};
use webengage_bridge::store::inbound::{Content, IngestCounts, RequestMeta};
use webengage_bridge::webengage::{Operation, OperationKind};

fn record(key: &str, payload: Value, version: Option<&str>) -> IncomingRecord {
    IncomingRecord {
        dedupe_key: key.to_owned(),
        version: version.map(|at| RecordVersion {
            key: "lead-1".into(),
            at: at.into(),
        }),
        mapped: MappedRecord {
            status: RecordStatus::Mapped,
            operations: vec![Operation {
                rule: "r".into(),
                kind: OperationKind::User,
                body: json!({"userId": key, "payload": payload.clone()}),
            }],
            warnings: vec![],
            failures: vec![],
            provenance: vec![],
        },
        payload,
    }
}

async fn send(
    committer: &GroupCommit,
    request: usize,
    records: Vec<IncomingRecord>,
) -> Result<IngestCounts, sqlx::Error> {
    let request_id = format!("req-{request}");
    let meta = RequestMeta {
        source: "test",
        mapping_hash: "h",
        content_type: Some("application/json"),
        request_id: &request_id,
        trace_context: None,
    };
    committer.ingest(&meta, Content::Records(records)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_commits_and_keep_their_own_counts() {
    let db = crate::helpers::TestDb::new().await;
    let committer = GroupCommit::spawn(
        db.pool.clone(),
        GroupCommitConfig {
            flushers: 2,
            max_records: 64,
        },
    );
    // 200 requests of 2 records; keys repeat every 50 requests, so 100 distinct keys... twice.
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let committer = committer.clone();
            tokio::spawn(async move {
                let key = i % 50;
                let records = vec![
                    record(&format!("a{key}"), json!({"n": i}), None),
                    record(&format!("b{key}"), json!({"n": i}), None),
                ];
                send(&committer, i, records).await
            })
        })
        .collect();
    let mut total = IngestCounts::default();
    for task in tasks {
        let counts = task.await.unwrap().expect("committed");
        assert_eq!(counts.accepted + counts.duplicates, 2);
        total.accepted += counts.accepted;
        total.duplicates += counts.duplicates;
    }
    assert_eq!(total.accepted, 100);
    assert_eq!(total.duplicates, 300);
    let inbound: i64 = sqlx::query_scalar("SELECT count(*) FROM inbound_records")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!((inbound, outbox), (100, 100));
    // Each outbox row belongs to the inbound row with the same key and payload.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox o JOIN inbound_records i ON i.id = o.inbound_id
         WHERE o.body->>'userId' <> i.dedupe_key OR (o.body->'payload')::jsonb <> i.payload::jsonb",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);
}

#[tokio::test]
async fn a_record_postgres_refuses_does_not_fail_its_neighbours() {
    let db = crate::helpers::TestDb::new().await;
    let committer = GroupCommit::spawn(
        db.pool.clone(),
        GroupCommitConfig {
            flushers: 1,
            max_records: 64,
        },
    );
    let good = |i: usize| {
        send(
            &committer,
            i,
            vec![record(&format!("k{i}"), json!({"ok": i}), None)],
        )
    };
    // A NUL character inside a string: Postgres' text (and so any read of it) cannot hold it.
    let nul = send(
        &committer,
        99,
        vec![record("nul", json!({"name": "a\u{0}b"}), None)],
    );
    let (a, b, c) = tokio::join!(good(1), nul, good(2));
    assert_eq!(a.unwrap().accepted, 1);
    assert_eq!(c.unwrap().accepted, 1);
    // The NUL record is kept too (with the character replaced), never refused forever.
    assert_eq!(b.unwrap().accepted, 1);
    let name: String =
        sqlx::query_scalar("SELECT payload->>'name' FROM inbound_records WHERE dedupe_key = 'nul'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(name, "a\u{FFFD}b");
}

#[tokio::test]
async fn the_stale_fence_orders_records_within_one_batch() {
    let db = crate::helpers::TestDb::new().await;
    let committer = GroupCommit::spawn(db.pool.clone(), GroupCommitConfig::default());
    let counts = send(
        &committer,
        1,
        vec![
            record("v2", json!({}), Some("2024-01-02T00:00:00Z")),
            record("v1", json!({}), Some("2024-01-01T00:00:00Z")),
            record("v3", json!({}), Some("2024-01-03T00:00:00Z")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(counts.accepted, 2);
    assert_eq!(counts.stale, 1);
    let stale: String =
        sqlx::query_scalar("SELECT dedupe_key FROM inbound_records WHERE status = 'stale'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(stale, "v1");
}

#[tokio::test]
async fn a_key_repeated_within_one_batch_keeps_the_first_record_and_its_operations() {
    let db = crate::helpers::TestDb::new().await;
    let committer = GroupCommit::spawn(db.pool.clone(), GroupCommitConfig::default());
    let mut two_operations = record("k2", json!({"n": 2}), None);
    two_operations.mapped.operations.push(Operation {
        rule: "second".into(),
        kind: OperationKind::Event,
        body: json!({"userId": "k2", "eventName": "e"}),
    });
    let counts = send(
        &committer,
        1,
        vec![
            record("k1", json!({"n": 1}), None),
            two_operations,
            record("k1", json!({"n": 3}), None),
        ],
    )
    .await
    .unwrap();
    assert_eq!((counts.accepted, counts.duplicates), (2, 1));
    let rows: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT i.dedupe_key, o.rule, i.payload::jsonb FROM outbox o
         JOIN inbound_records i ON i.id = o.inbound_id ORDER BY o.id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("k1".into(), "r".into(), json!({"n": 1})),
            ("k2".into(), "r".into(), json!({"n": 2})),
            ("k2".into(), "second".into(), json!({"n": 2})),
        ]
    );
}
