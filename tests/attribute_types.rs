//! `store::attribute_types` on a real, freshly migrated Postgres database.

mod common;

use common::TestDb;
use webengage_bridge::store::attribute_types::{load_all, record_new};
use webengage_bridge::webengage::types::{AttrType, AttributeType};

fn row(scope: &str, name: &str, t: AttrType) -> AttributeType {
    AttributeType {
        scope: scope.into(),
        name: name.into(),
        json_type: t,
    }
}

#[tokio::test]
async fn the_first_recorded_type_wins_and_loads_back() {
    let db = TestDb::new().await;
    assert!(load_all(&db.pool).await.expect("load").is_empty());
    assert!(record_new(&db.pool, &[]).await.expect("nothing").is_empty());

    let first = [
        row("user", "lead_score", AttrType::Number),
        row("event:Lead Synced", "stage", AttrType::String),
        // The same attribute twice in one batch: the first row wins, no error.
        row("user", "city", AttrType::String),
        row("user", "city", AttrType::Number),
    ];
    let inserted = record_new(&db.pool, &first).await.expect("insert");
    assert_eq!(inserted.len(), 3, "{inserted:?}");

    // Another process recorded `lead_score` first: the new type is not stored.
    let second = [
        row("user", "lead_score", AttrType::String),
        row("user", "signed_up", AttrType::Date),
    ];
    let inserted = record_new(&db.pool, &second).await.expect("insert");
    assert_eq!(inserted, vec![row("user", "signed_up", AttrType::Date)]);

    let snapshot = load_all(&db.pool).await.expect("load");
    assert_eq!(snapshot.len(), 4);
    assert_eq!(snapshot.get("user", "lead_score"), Some(AttrType::Number));
    assert_eq!(snapshot.get("user", "city"), Some(AttrType::String));
    assert_eq!(
        snapshot.get("event:Lead Synced", "stage"),
        Some(AttrType::String)
    );
    assert_eq!(snapshot.get("event:Other", "stage"), None);
    assert_eq!(snapshot.count("user", AttrType::String), 1);
}

#[tokio::test]
async fn record_new_runs_inside_a_transaction() {
    let db = TestDb::new().await;
    let mut tx = db.pool.begin().await.expect("begin");
    record_new(&mut *tx, &[row("user", "plan", AttrType::String)])
        .await
        .expect("insert");
    tx.rollback().await.expect("rollback");
    assert!(load_all(&db.pool).await.expect("load").is_empty());
}
