mod common;

#[tokio::test]
async fn fresh_database_has_the_schema() {
    let db = common::TestDb::new().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let paused: Option<String> = sqlx::query_scalar("SELECT paused_reason FROM destination_state")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(paused, None);
}
