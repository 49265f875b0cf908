//! Bulk delivery (`WEBENGAGE_BULK`) and coalescing (`BRIDGE_COALESCE_USERS`) against a
//! real Postgres and wiremock as WebEngage, the worker stepped by the test.

use std::collections::HashSet;

use crate::helpers::delivery::{
    self as d, Stepper, calls, queue, queued, request_ids, row, status,
};
use serde_json::{Value, json};
use webengage_bridge::config::DeliverySettings;
use webengage_bridge::delivery::coalesce::merge_users;
use webengage_bridge::store::{OutboxStatus, attempts};
use webengage_bridge::webengage::OperationKind::{Event, User};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn no_coalescing() -> DeliverySettings {
    DeliverySettings {
        coalesce_users: false,
        ..d::delivery()
    }
}

async fn answering_queued() -> MockServer {
    let server = MockServer::start().await;
    d::accept_all(&server).await;
    server
}

#[tokio::test]
async fn due_users_and_events_go_in_one_bulk_call_each() {
    let db = crate::helpers::TestDb::new().await;
    let server = answering_queued().await;
    let users: Vec<Value> = (1..=3)
        .map(|n| json!({"userId": format!("u{n}"), "firstName": "A"}))
        .collect();
    let events: Vec<Value> = (4..=5)
        .map(|n| json!({"userId": format!("u{n}"), "eventName": "E"}))
        .collect();
    let mut ids = Vec::new();
    for body in &users {
        ids.push(queue(&db.pool, User, body).await.id);
    }
    for body in &events {
        ids.push(queue(&db.pool, Event, body).await.id);
    }
    let mut worker = Stepper::new(&db.pool, d::bulk(&server), d::delivery()).await;
    let (_, report) = worker.step().await;
    assert_eq!((report.calls, report.delivered), (2, 5));

    for id in &ids {
        assert_eq!(status(&db.pool, *id).await, OutboxStatus::Delivered);
    }
    let mut sent = calls(&server).await;
    sent.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        sent,
        vec![
            ("bulk-events".to_owned(), json!({ "events": events })),
            ("bulk-users".to_owned(), json!({ "users": users })),
        ]
    );
    // Every row's attempt names the batch's request id, the one sent: 32 hex digits.
    let users_call = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path().ends_with("/bulk-users"))
        .unwrap();
    let sent_id = users_call.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        sent_id.len() == 32
            && sent_id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{sent_id}"
    );
    let first = attempts::list_for_outbox(&db.pool, ids[0]).await.unwrap();
    assert_eq!(first[0].request_id.simple().to_string(), sent_id);
}

#[tokio::test]
async fn a_400_on_a_bulk_call_isolates_the_bad_row() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let bad = json!({"response": {"status": "error", "message": "invalid birthDate"}});
    Mock::given(method("POST"))
        .and(body_string_contains("not-a-date"))
        .respond_with(ResponseTemplate::new(400).set_body_json(bad))
        .with_priority(1)
        .mount(&server)
        .await;
    d::accept_all(&server).await;
    let mut ids = Vec::new();
    for n in 1..=4 {
        let birth = if n == 4 {
            "not-a-date"
        } else {
            "1990-01-01T00:00:00+0000"
        };
        let body = json!({"userId": format!("u{n}"), "birthDate": birth});
        ids.push(queue(&db.pool, User, &body).await.id);
    }
    let mut worker = Stepper::new(&db.pool, d::bulk(&server), d::delivery()).await;
    let (_, report) = worker.step().await;
    assert_eq!((report.delivered, report.dead), (3, 1));

    let dead = row(&db.pool, ids[3]).await;
    assert_eq!((dead.status, dead.attempts), (OutboxStatus::Dead, 1));
    assert!(dead.last_error.unwrap().contains("invalid birthDate"));
    // 4 rows (400) → [u1,u2] (ok) + [u3,u4] (400) → u3 alone (ok) + u4 alone (400).
    let endpoints: Vec<String> = calls(&server).await.into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        endpoints,
        ["bulk-users", "bulk-users", "bulk-users", "users", "users"]
    );
}

#[tokio::test]
async fn a_retried_batch_keeps_its_request_id() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/accounts/lic/bulk-events"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    d::accept_all(&server).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        let body = json!({"userId": format!("u{n}"), "eventName": "E"});
        ids.push(queue(&db.pool, Event, &body).await.id);
    }
    let mut worker = Stepper::new(&db.pool, d::bulk(&server), d::delivery()).await;
    worker.drain(&db.pool, true).await;

    let sent = request_ids(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent.iter().collect::<HashSet<_>>().len(),
        1,
        "same id on the retry: {sent:?}"
    );
    for id in &ids {
        let r = row(&db.pool, *id).await;
        assert_eq!((r.status, r.attempts), (OutboxStatus::Delivered, 2));
    }
}

/// A lead created, then updated three times while delivery waited.
fn lead_versions() -> Vec<Value> {
    vec![
        json!({"userId": "L1", "firstName": "Asha", "email": "asha@example.com",
               "attributes": {"stage": "new", "score": 10}}),
        json!({"userId": "L1", "lastName": "Rao", "attributes": {"score": 20}}),
        json!({"userId": "L1", "phone": "+919800000001", "attributes": {"owner": "Meera"}}),
        json!({"userId": "L1", "email": "asha.rao@example.com", "attributes": {"stage": "won"}}),
    ]
}

#[tokio::test]
async fn queued_updates_of_a_user_go_as_one_record_equal_to_applying_them_in_order() {
    let db = crate::helpers::TestDb::new().await;
    let server = answering_queued().await;
    let versions = lead_versions();
    let mut ids = Vec::new();
    for body in &versions {
        ids.push(queue(&db.pool, User, body).await.id);
    }
    for n in 2..=3 {
        queue(
            &db.pool,
            User,
            &json!({"userId": format!("L{n}"), "firstName": "B"}),
        )
        .await;
    }
    let mut worker = Stepper::new(&db.pool, d::webengage(&server), d::delivery()).await;
    let report = worker.drain(&db.pool, false).await;
    assert_eq!((report.calls, report.delivered), (3, 6));

    let sent: Vec<Value> = calls(&server)
        .await
        .into_iter()
        .map(|(_, body)| body)
        .filter(|b| b["userId"] == "L1")
        .collect();
    let expected = json!({"userId": "L1", "firstName": "Asha", "email": "asha.rao@example.com",
        "attributes": {"stage": "won", "score": 20, "owner": "Meera"},
        "lastName": "Rao", "phone": "+919800000001"});
    assert_eq!(sent, vec![expected.clone()]);
    assert_eq!(merge_users(&versions), expected);
    let head = row(&db.pool, ids[0]).await;
    assert_eq!(
        (head.status, head.coalesced_into),
        (OutboxStatus::Delivered, None)
    );
    for id in &ids[1..] {
        let merged = row(&db.pool, *id).await;
        assert_eq!(
            (merged.status, merged.coalesced_into),
            (OutboxStatus::Delivered, Some(ids[0]))
        );
    }
    // One call carried the four rows: each has its attempt, under one derived id.
    let mut sent_ids = HashSet::new();
    for id in &ids {
        let tries = attempts::list_for_outbox(&db.pool, *id).await.unwrap();
        assert_eq!(tries.len(), 1);
        sent_ids.insert(tries[0].request_id);
    }
    assert_eq!(sent_ids.len(), 1);
}

#[tokio::test]
async fn an_event_between_updates_keeps_them_apart_and_keeps_its_place() {
    let db = crate::helpers::TestDb::new().await;
    let server = answering_queued().await;
    let versions = lead_versions();
    queue(&db.pool, User, &versions[0]).await;
    queue(&db.pool, User, &versions[1]).await;
    queue(
        &db.pool,
        Event,
        &json!({"userId": "L1", "eventName": "Stage Changed"}),
    )
    .await;
    queue(&db.pool, User, &versions[2]).await;
    queue(&db.pool, User, &versions[3]).await;

    for bulk in [false, true] {
        sqlx::query("UPDATE outbox SET status = 'pending', attempts = 0, coalesced_into = NULL, head = (id = (SELECT min(id) FROM outbox))")
            .execute(&db.pool)
            .await
            .unwrap();
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(queued())
            .mount(&server)
            .await;
        let settings = if bulk {
            d::bulk(&server)
        } else {
            d::webengage(&server)
        };
        let mut worker = Stepper::new(&db.pool, settings, d::delivery()).await;
        assert_eq!(worker.drain(&db.pool, false).await.delivered, 5);
        let sent: Vec<Value> = calls(&server)
            .await
            .into_iter()
            .flat_map(
                |(_, body)| match body.get("users").or_else(|| body.get("events")) {
                    Some(Value::Array(items)) => items.clone(),
                    _ => vec![body],
                },
            )
            .collect();
        assert_eq!(
            sent,
            vec![
                merge_users(&versions[..2]),
                json!({"userId": "L1", "eventName": "Stage Changed"}),
                merge_users(&versions[2..]),
            ],
            "bulk: {bulk}"
        );
    }
}

#[tokio::test]
async fn with_coalescing_off_every_update_is_sent() {
    let db = crate::helpers::TestDb::new().await;
    let server = answering_queued().await;
    for body in lead_versions() {
        queue(&db.pool, User, &body).await;
    }
    let mut worker = Stepper::new(&db.pool, d::webengage(&server), no_coalescing()).await;
    assert_eq!(worker.drain(&db.pool, false).await.calls, 4);
    let sent: Vec<Value> = calls(&server).await.into_iter().map(|(_, b)| b).collect();
    assert_eq!(sent, lead_versions());
}

#[tokio::test]
async fn a_merged_record_webengage_rejects_goes_again_as_its_head_alone() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("not-a-phone"))
        .respond_with(ResponseTemplate::new(400))
        .with_priority(1)
        .mount(&server)
        .await;
    d::accept_all(&server).await;
    let first = queue(&db.pool, User, &json!({"userId": "L1", "firstName": "A"})).await;
    let bad = queue(
        &db.pool,
        User,
        &json!({"userId": "L1", "phone": "not-a-phone"}),
    )
    .await;
    let last = queue(&db.pool, User, &json!({"userId": "L1", "lastName": "R"})).await;

    let mut worker = Stepper::new(&db.pool, d::webengage(&server), d::delivery()).await;
    worker.drain(&db.pool, true).await;
    let dead = row(&db.pool, bad.id).await;
    assert_eq!((dead.status, dead.attempts), (OutboxStatus::Dead, 1));
    assert_eq!(status(&db.pool, first.id).await, OutboxStatus::Delivered);
    assert_eq!(status(&db.pool, last.id).await, OutboxStatus::Delivered);
    // [A+bad+R] 400 → A alone; [bad+R] 400 → bad alone (400, dead); R alone.
    let sent: Vec<Value> = calls(&server).await.into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        sent,
        vec![
            json!({"userId": "L1", "firstName": "A", "phone": "not-a-phone", "lastName": "R"}),
            json!({"userId": "L1", "firstName": "A"}),
            json!({"userId": "L1", "phone": "not-a-phone", "lastName": "R"}),
            json!({"userId": "L1", "phone": "not-a-phone"}),
            json!({"userId": "L1", "lastName": "R"}),
        ]
    );
}
