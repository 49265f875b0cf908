//! The outbox's claim, lease and settle statements, against a real Postgres.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;
use webengage_bridge::mapping::{IncomingRecord, MappedRecord, RecordStatus};
use webengage_bridge::store::attempts::{self, NewAttempt};
use webengage_bridge::store::backlog::{self, Queued};
use webengage_bridge::store::destination::{self, Capacity};
use webengage_bridge::store::inbound::{self, Content, RequestMeta};
use webengage_bridge::store::outbox::{self, ClaimedRow, Due, Lease};
use webengage_bridge::store::settle::{self, Delivered};
use webengage_bridge::store::support::{self, ReplayFilter};
use webengage_bridge::webengage::Operation;
use webengage_bridge::webengage::OperationKind::{self, Event, Transaction, User};

const LEASE: Duration = Duration::from_secs(60);

async fn insert(pool: &PgPool, user_id: Option<&str>, inbound_id: Option<i64>) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO outbox (request_id, inbound_id, source, rule, kind, user_id, body, head)
         VALUES ($1, $2, 'test', 'rule', 'user', $3, $4, $3::text IS NULL OR NOT EXISTS (
             SELECT 1 FROM outbox e WHERE e.user_id = $3 AND e.status IN ('pending', 'in_flight')))
         RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(inbound_id)
    .bind(user_id)
    .bind(json!({"userId": user_id}))
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn status(pool: &PgPool, id: i64) -> String {
    outbox::get(pool, id)
        .await
        .unwrap()
        .unwrap()
        .status
        .to_string()
}

#[tokio::test]
async fn a_claim_takes_only_the_first_open_row_of_each_user() {
    let db = crate::helpers::TestDb::new().await;
    let a1 = insert(&db.pool, Some("a"), None).await;
    let a2 = insert(&db.pool, Some("a"), None).await;
    let b1 = insert(&db.pool, Some("b"), None).await;
    let n1 = insert(&db.pool, None, None).await;
    let n2 = insert(&db.pool, None, None).await;

    let claimed = outbox::claim_due(&db.pool, 10, LEASE).await.unwrap();
    let ids: Vec<i64> = claimed.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![a1, b1, n1, n2]);
    assert!(
        claimed
            .iter()
            .all(|r| r.lease_token == claimed[0].lease_token)
    );

    // a2 waits while a1 is in flight, and while a1 waits for a retry.
    assert!(
        outbox::claim_due(&db.pool, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let a1_lease = claimed[0].lease();
    assert!(
        settle::schedule_retry(
            &db.pool,
            a1_lease,
            OffsetDateTime::now_utc() + Duration::from_secs(3600),
            "boom",
            true
        )
        .await
        .unwrap()
    );
    assert!(
        outbox::claim_due(&db.pool, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let next = outbox::next_due_in(&db.pool).await.unwrap().unwrap();
    assert!(
        next > Duration::from_secs(3500),
        "a2 is held back, a1 is due in an hour: {next:?}"
    );

    // a2 is not even a candidate: only a1 is a's head.
    assert!(!outbox::get(&db.pool, a2).await.unwrap().unwrap().head);

    // Once a1 is finished (here: dead), a2 is a's head and may go.
    sqlx::query("UPDATE outbox SET next_attempt_at = now() WHERE id = $1")
        .bind(a1)
        .execute(&db.pool)
        .await
        .unwrap();
    let again = outbox::claim_due(&db.pool, 10, LEASE).await.unwrap();
    assert_eq!(again.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a1]);
    assert!(
        settle::mark_dead(&db.pool, again[0].lease(), "boom")
            .await
            .unwrap()
    );
    assert!(outbox::get(&db.pool, a2).await.unwrap().unwrap().head);
    let ids: Vec<i64> = outbox::claim_due(&db.pool, 10, LEASE)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![a2]);
}

#[tokio::test]
async fn an_expired_lease_returns_to_pending_uncharged() {
    let db = crate::helpers::TestDb::new().await;
    let expired = insert(&db.pool, Some("a"), None).await;
    let live = insert(&db.pool, Some("b"), None).await;
    assert_eq!(
        outbox::claim_due(&db.pool, 10, LEASE).await.unwrap().len(),
        2
    );
    sqlx::query("UPDATE outbox SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(expired)
        .execute(&db.pool)
        .await
        .unwrap();

    assert_eq!(settle::release_expired_leases(&db.pool).await.unwrap(), 1);
    let row = outbox::get(&db.pool, expired).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 0));
    assert!(row.lease_token.is_none() && row.lease_until.is_none());
    assert_eq!(status(&db.pool, live).await, "in_flight");
}

#[tokio::test]
async fn a_renewed_lease_outlives_its_first_expiry_and_a_foreign_token_renews_nothing() {
    let db = crate::helpers::TestDb::new().await;
    insert(&db.pool, Some("a"), None).await;
    insert(&db.pool, Some("b"), None).await;
    let claimed = outbox::claim_due(&db.pool, 10, LEASE).await.unwrap();
    let leases: Vec<outbox::Lease> = claimed.iter().map(|r| r.lease()).collect();
    // Both leases are about to run out; only the first is still ours to renew.
    sqlx::query("UPDATE outbox SET lease_until = now() - interval '1 second'")
        .execute(&db.pool)
        .await
        .unwrap();
    let foreign = outbox::Lease {
        id: leases[1].id,
        token: uuid::Uuid::new_v4(),
    };
    let renewed = settle::renew_leases(&db.pool, &[leases[0], foreign], LEASE)
        .await
        .unwrap();
    assert_eq!(renewed, 1);
    assert_eq!(settle::release_expired_leases(&db.pool).await.unwrap(), 1);
    assert_eq!(status(&db.pool, leases[0].id).await, "in_flight");
    assert_eq!(status(&db.pool, leases[1].id).await, "pending");
}

#[tokio::test]
async fn a_stale_lease_token_settles_nothing() {
    let db = crate::helpers::TestDb::new().await;
    let id = insert(&db.pool, Some("a"), None).await;
    let first = outbox::claim_due(&db.pool, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    let stale = first.lease();
    let forged = Lease {
        id,
        token: Uuid::new_v4(),
    };
    assert!(!settle::mark_delivered(&db.pool, forged).await.unwrap());

    // The lease expires and another worker claims the row again.
    sqlx::query("UPDATE outbox SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    settle::release_expired_leases(&db.pool).await.unwrap();
    let second = outbox::claim_due(&db.pool, 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_ne!(second.lease_token, stale.token);

    assert!(!settle::mark_delivered(&db.pool, stale).await.unwrap());
    assert!(!settle::mark_dead(&db.pool, stale, "late").await.unwrap());
    assert!(
        !settle::schedule_retry(&db.pool, stale, OffsetDateTime::now_utc(), "late", true)
            .await
            .unwrap()
    );
    assert!(!settle::release(&db.pool, stale, None).await.unwrap());
    let row = outbox::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("in_flight", 0));
    assert_eq!(row.lease_token, Some(second.lease_token));

    assert!(
        settle::mark_delivered(&db.pool, second.lease())
            .await
            .unwrap()
    );
    assert_eq!(status(&db.pool, id).await, "delivered");
}

#[tokio::test]
async fn attempts_are_listed_in_order_with_truncated_excerpts() {
    let db = crate::helpers::TestDb::new().await;
    let id = insert(&db.pool, Some("a"), None).await;
    let long = "x".repeat(5000);
    for (status, excerpt) in [(Some(503), long.as_str()), (None, "timeout")] {
        let attempt = NewAttempt {
            outbox_id: id,
            request_id: Uuid::nil(),
            http_status: status,
            outcome: "transient",
            latency_ms: 12,
            response_excerpt: Some(excerpt),
        };
        attempts::record_attempt(&db.pool, &attempt).await.unwrap();
    }
    let listed = attempts::list_for_outbox(&db.pool, id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].response_excerpt.as_ref().unwrap().len(),
        attempts::EXCERPT_LIMIT
    );
    assert_eq!(listed[1].http_status, None);
}

#[tokio::test]
async fn the_next_due_time_counts_a_fresh_row_put_off_by_a_rate_limit() {
    let db = crate::helpers::TestDb::new().await;
    let id = insert(&db.pool, Some("u1"), None).await;
    // A fresh row is due at once; the claim takes it.
    let claimed = outbox::claim_due(&db.pool, 10, LEASE).await.unwrap();
    assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(outbox::next_due_in(&db.pool).await.unwrap(), None);
    // A 429 puts it off for a minute without charging an attempt.
    let later = OffsetDateTime::now_utc() + Duration::from_secs(60);
    assert!(
        settle::release(&db.pool, claimed[0].lease(), Some(later))
            .await
            .unwrap()
    );
    let next = outbox::next_due_in(&db.pool)
        .await
        .unwrap()
        .expect("a row is waiting");
    assert!(
        next > Duration::from_secs(50) && next <= Duration::from_secs(60),
        "{next:?}"
    );
}

/// The scans over `outbox` in the plan Postgres makes for the claim once it stops
/// planning each execution (a generic plan, which cannot see the LIMIT or the kind):
/// (alias, node type, index) of each.
async fn claim_plan_scans(
    db: &crate::helpers::TestDb,
    which: outbox::Due,
) -> Vec<(String, String, String, i64)> {
    use sqlx::Connection;
    // PREPARE outlives transactions: a connection of its own, closed afterwards.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&outbox::prepare_claim("claim", which))
        .execute(&mut conn)
        .await
        .unwrap();
    // The claim runs (ANALYZE) and is rolled back: the pages it read are counted.
    let mut tx = conn.begin().await.unwrap();
    let plan: serde_json::Value = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim(200, interval '1 minute', gen_random_uuid(), 'user')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let mut scans = Vec::new();
    let mut nodes = vec![&plan[0]["Plan"]];
    while let Some(node) = nodes.pop() {
        if node["Relation Name"] == "outbox" {
            let text = |key: &str| node[key].as_str().unwrap_or_default().to_owned();
            let pages = ["Shared Hit Blocks", "Shared Read Blocks"]
                .iter()
                .map(|key| node[*key].as_i64().unwrap_or(0))
                .sum();
            scans.push((text("Alias"), text("Node Type"), text("Index Name"), pages));
        }
        nodes.extend(node["Plans"].as_array().into_iter().flatten());
    }
    scans
}

/// A drain outruns the planner's statistics: most rows were pending when the table was
/// last analyzed and are delivered now. The claim must still find due rows through its
/// partial index, not walk the primary key past every delivered row (0.6 s a claim
/// with 900,000 of them) or scan the whole table to fetch what it claimed.
#[tokio::test]
async fn the_claim_walks_its_partial_index_when_statistics_are_stale() {
    let db = crate::helpers::TestDb::new().await;
    for sql in [
        "ALTER TABLE outbox SET (autovacuum_enabled = false)",
        "INSERT INTO outbox (request_id, source, rule, kind, user_id, body)
         SELECT gen_random_uuid(), 'test', 'rule', (CASE WHEN n % 2 = 0 THEN 'user' ELSE 'event' END)::operation_kind,
                'user-' || n, '{}'::json
         FROM generate_series(1, 100000) AS n",
        "ANALYZE outbox",
        "UPDATE outbox SET status = 'delivered', attempts = 1 WHERE id <= 90000",
    ] {
        sqlx::query(sql).execute(&db.pool).await.unwrap();
    }
    let scans = claim_plan_scans(&db, outbox::Due::Fresh).await;
    assert!(
        scans.iter().all(|(_, node, ..)| node != "Seq Scan"),
        "{scans:?}"
    );
    let candidates: Vec<_> = scans.iter().filter(|(alias, ..)| alias == "o").collect();
    assert_eq!(candidates.len(), 1, "{scans:?}");
    assert_eq!(candidates[0].2, "outbox_claim_fresh", "{scans:?}");
}

/// After an outage every user's head waits for its retry and none is due yet: a retry
/// claim must stop at the first entry not due, not read every waiting entry of its kind
/// (with 500,000 users waiting that was 12 ms a claim, growing with the backlog).
#[tokio::test]
async fn a_retry_claim_with_nothing_due_stops_at_the_first_waiting_entry() {
    let db = crate::helpers::TestDb::new().await;
    for sql in [
        "INSERT INTO outbox (request_id, source, rule, kind, user_id, body, attempts, next_attempt_at)
         SELECT gen_random_uuid(), 'test', 'rule', 'user', 'user-' || n, '{}'::json, 1,
                now() + interval '1 hour'
         FROM generate_series(1, 50000) AS n",
        "VACUUM ANALYZE outbox",
    ] {
        sqlx::query(sql).execute(&db.pool).await.unwrap();
    }
    let scans = claim_plan_scans(&db, outbox::Due::Retries).await;
    let candidates: Vec<_> = scans.iter().filter(|(alias, ..)| alias == "o").collect();
    assert_eq!(candidates.len(), 1, "{scans:?}");
    assert_eq!(candidates[0].2, "outbox_claim_retry", "{scans:?}");
    // The index's root and a leaf or two; a walk of the 50,000 entries reads ~150 pages.
    assert!(candidates[0].3 < 10, "{scans:?}");
}

/// A request's records through the ingest statement, each with its operations.
async fn ingest(pool: &PgPool, records: &[(&str, Vec<(OperationKind, Value)>)]) {
    let records: Vec<IncomingRecord> = records
        .iter()
        .map(|(key, ops)| IncomingRecord {
            dedupe_key: (*key).to_owned(),
            payload: json!({"key": key}),
            version: None,
            mapped: MappedRecord {
                status: RecordStatus::Mapped,
                operations: ops
                    .iter()
                    .map(|(kind, body)| Operation {
                        rule: "r".into(),
                        kind: *kind,
                        body: body.clone(),
                    })
                    .collect(),
                warnings: Vec::new(),
                failures: Vec::new(),
                provenance: Vec::new(),
            },
        })
        .collect();
    let meta = RequestMeta {
        source: "test",
        mapping_hash: "h",
        content_type: None,
        request_id: "req",
        trace_context: None,
    };
    inbound::ingest(pool, &meta, &Content::Records(records))
        .await
        .unwrap();
}

/// (id, user, kind, head) of every row, in id order.
async fn heads(pool: &PgPool) -> Vec<(Option<String>, OperationKind, bool)> {
    sqlx::query_as("SELECT user_id, kind, head FROM outbox ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn ingest_makes_a_row_its_users_head_only_when_the_user_has_no_open_row() {
    let db = crate::helpers::TestDb::new().await;
    ingest(
        &db.pool,
        &[
            (
                "k1",
                vec![
                    (User, json!({"userId": "a"})),
                    (Event, json!({"userId": "a"})),
                ],
            ),
            (
                "k2",
                vec![(User, json!({"userId": "b"})), (Event, json!({}))],
            ),
            ("k3", vec![(User, json!({"userId": "a"}))]),
        ],
    )
    .await;
    ingest(
        &db.pool,
        &[(
            "k4",
            vec![
                (User, json!({"userId": "b"})),
                (User, json!({"userId": "c"})),
            ],
        )],
    )
    .await;
    let some = |u: &str| Some(u.to_owned());
    assert_eq!(
        heads(&db.pool).await,
        vec![
            (some("a"), User, true),
            (some("a"), Event, false),
            (some("b"), User, true),
            (None, Event, true),
            (some("a"), User, false),
            (some("b"), User, false),
            (some("c"), User, true),
        ]
    );
    // Claims see heads only; delivering a's head makes its event the head.
    let claimed = outbox::claim_due(&db.pool, 10, LEASE).await.unwrap();
    let users: Vec<Option<String>> = claimed.iter().map(|r| r.user_id.clone()).collect();
    assert_eq!(users, vec![some("a"), some("b"), None, some("c")]);
    let a = claimed[0].lease();
    let delivered = Delivered {
        lease: a,
        coalesced_into: None,
    };
    assert_eq!(
        settle::mark_delivered_many(&db.pool, &[delivered])
            .await
            .unwrap(),
        vec![a.id]
    );
    assert!(heads(&db.pool).await[1].2);
    // A user whose rows are all finished starts a new queue.
    let c = claimed[3].lease();
    assert!(settle::mark_delivered(&db.pool, c).await.unwrap());
    ingest(&db.pool, &[("k5", vec![(User, json!({"userId": "c"}))])]).await;
    assert_eq!(heads(&db.pool).await.last(), Some(&(some("c"), User, true)));
}

#[tokio::test]
async fn cancelling_a_head_or_replaying_a_row_keeps_its_users_queue_moving() {
    let db = crate::helpers::TestDb::new().await;
    let first = insert(&db.pool, Some("a"), None).await;
    let second = insert(&db.pool, Some("a"), None).await;
    let third = insert(&db.pool, Some("a"), None).await;
    assert_eq!(support::cancel(&db.pool, first).await.unwrap(), 1);
    let claimed = outbox::claim_due(&db.pool, 10, LEASE).await.unwrap();
    assert_eq!(
        claimed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![second]
    );
    // The cancelled (never head) third row, replayed, is a candidate again: it goes
    // once the rows before it are done.
    assert_eq!(support::cancel(&db.pool, third).await.unwrap(), 1);
    assert!(
        settle::mark_delivered(&db.pool, claimed[0].lease())
            .await
            .unwrap()
    );
    assert_eq!(support::retry_now(&db.pool, third).await.unwrap(), 1);
    let claimed = outbox::claim_due(&db.pool, 10, LEASE).await.unwrap();
    assert_eq!(
        claimed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![third]
    );
}

#[tokio::test]
async fn followers_are_the_user_updates_right_behind_a_head() {
    let db = crate::helpers::TestDb::new().await;
    ingest(
        &db.pool,
        &[
            ("k1", vec![(User, json!({"userId": "a", "n": 1}))]),
            ("k2", vec![(User, json!({"userId": "b", "n": 1}))]),
            ("k3", vec![(User, json!({"userId": "a", "n": 2}))]),
            (
                "k4",
                vec![
                    (User, json!({"userId": "a", "n": 3})),
                    (Event, json!({"userId": "a"})),
                ],
            ),
            ("k5", vec![(User, json!({"userId": "a", "n": 4}))]),
            ("k6", vec![(User, json!({"userId": "b", "n": 2}))]),
        ],
    )
    .await;
    let claimed = outbox::claim_due_of(&db.pool, 10, LEASE, Due::Fresh, Some(User))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let heads: Vec<&ClaimedRow> = claimed.iter().collect();
    let followers = outbox::claim_followers(&db.pool, &heads, 10, LEASE)
        .await
        .unwrap();
    let bodies: Vec<Value> = followers.iter().map(|r| r.body.clone()).collect();
    // a: n2, n3 (the event ends the run: n4 stays); b: n2.
    assert_eq!(
        bodies,
        vec![
            json!({"userId": "a", "n": 2}),
            json!({"userId": "a", "n": 3}),
            json!({"userId": "b", "n": 2}),
        ]
    );
    assert!(
        followers
            .iter()
            .all(|f| f.lease_token == claimed[0].lease_token)
    );
    // At most `max` each.
    settle::release_many(
        &db.pool,
        &followers.iter().map(ClaimedRow::lease).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let one = outbox::claim_followers(&db.pool, &heads, 1, LEASE)
        .await
        .unwrap();
    assert_eq!(one.len(), 2);
}

#[tokio::test]
async fn replay_since_takes_only_the_dead_rows_created_from_the_cut() {
    let db = crate::helpers::TestDb::new().await;
    let before = insert(&db.pool, Some("a"), None).await;
    let after = insert(&db.pool, Some("b"), None).await;
    let cut = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    sqlx::query(
        "UPDATE outbox SET status = 'dead', created_at = now() - interval '2 hours' WHERE id = $1",
    )
    .bind(before)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE outbox SET status = 'dead', created_at = now() - interval '30 minutes' WHERE id = $1")
        .bind(after)
        .execute(&db.pool)
        .await
        .unwrap();
    let filter = ReplayFilter {
        status: None,
        source: None,
        since: Some(cut),
    };
    assert_eq!(support::replay(&db.pool, &filter).await.unwrap(), 1);
    assert_eq!(status(&db.pool, before).await, "dead");
    assert_eq!(status(&db.pool, after).await, "pending");

    // The same through the command line.
    let cut_text = cut
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    sqlx::query("UPDATE outbox SET status = 'dead'")
        .execute(&db.pool)
        .await
        .unwrap();
    let output = crate::helpers::bridge::binary()
        .args([
            "outbox", "replay", "--status", "dead", "--since", &cut_text, "--json",
        ])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(status(&db.pool, before).await, "dead");
    assert_eq!(status(&db.pool, after).await, "pending");
}

#[tokio::test]
async fn the_backlog_counts_queued_rows_per_kind_and_minutes_of_the_last_day() {
    let db = crate::helpers::TestDb::new().await;
    ingest(
        &db.pool,
        &[
            (
                "k1",
                vec![
                    (User, json!({"userId": "a"})),
                    (Event, json!({"userId": "a"})),
                ],
            ),
            (
                "k2",
                vec![
                    (User, json!({"userId": "b"})),
                    (Transaction, json!({"userId": "b"})),
                ],
            ),
        ],
    )
    .await;
    let claimed = outbox::claim_due(&db.pool, 1, LEASE).await.unwrap();
    assert!(
        settle::mark_delivered(&db.pool, claimed[0].lease())
            .await
            .unwrap()
    );
    let queued = backlog::queued(&db.pool).await.unwrap();
    assert_eq!(
        queued,
        Queued {
            users: 1,
            events: 1,
            transactions: 1
        }
    );
    backlog::sample(&db.pool, 3).await.unwrap();
    backlog::sample(&db.pool, 2).await.unwrap();
    let minutes = backlog::history(&db.pool, Duration::from_secs(86400))
        .await
        .unwrap();
    assert_eq!(minutes.len(), 1);
    assert_eq!(
        (
            minutes[0].users,
            minutes[0].events,
            minutes[0].transactions,
            minutes[0].delivered
        ),
        (1, 1, 1, 5)
    );
    // No worker has said what it can deliver yet: no estimate.
    let now = backlog::backlog(&db.pool).await.unwrap();
    assert_eq!((now.delivered_per_minute, now.drain_seconds), (1.0, None));
    let capacity = Capacity {
        users: 60,
        events: 30,
        transactions: 1,
    };
    destination::set_capacity(&db.pool, capacity).await.unwrap();
    let now = backlog::backlog(&db.pool).await.unwrap();
    assert_eq!(now.capacity_per_minute, Some(capacity));
    assert_eq!(now.drain_seconds, Some(60.0));
    sqlx::query("UPDATE backlog_minutes SET at = at - interval '2 days'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(
        backlog::history(&db.pool, Duration::from_secs(86400))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        backlog::prune(&db.pool, Duration::from_secs(86400))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_resent_merged_row_is_its_users_head_again() {
    let db = crate::helpers::TestDb::new().await;
    // a's head carries a second update (coalesced); both delivered.
    let head = insert(&db.pool, Some("a"), None).await;
    let merged = insert(&db.pool, Some("a"), None).await;
    let claimed = outbox::claim_due(&db.pool, 10, LEASE).await.unwrap();
    let heads: Vec<&ClaimedRow> = claimed.iter().collect();
    let followers = outbox::claim_followers(&db.pool, &heads, 10, LEASE)
        .await
        .unwrap();
    let settles = [
        Delivered {
            lease: claimed[0].lease(),
            coalesced_into: None,
        },
        Delivered {
            lease: followers[0].lease(),
            coalesced_into: Some(head),
        },
    ];
    settle::mark_delivered_many(&db.pool, &settles)
        .await
        .unwrap();
    // Resending the merged row alone: it is a's only open row, so it must be claimable.
    assert_eq!(support::resend(&db.pool, merged).await.unwrap(), 1);
    let again = outbox::claim_due(&db.pool, 10, LEASE).await.unwrap();
    assert_eq!(again.iter().map(|r| r.id).collect::<Vec<_>>(), vec![merged]);
}
