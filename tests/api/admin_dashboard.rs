//! The dashboard's backlog panel: queued rows per kind, the rate, the drain estimate, and
//! the server-drawn SVG chart of the last 24 hours from the per-minute samples.

use crate::helpers::{ADMIN_TOKEN, AppOptions, TestApp, fixture, spawn_app};

async fn dashboard(app: &TestApp) -> String {
    let answer = app
        .http
        .get(format!("{}/admin/", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.text().await.unwrap()
}

/// The `(x, y)` pairs of every polyline and dot inside the element with `class`.
fn points(svg: &str, class: &str) -> Vec<(f64, f64)> {
    let group = svg
        .split(&format!("<g class=\"{class}\">"))
        .nth(1)
        .and_then(|rest| rest.split("</g>").next())
        .unwrap_or_else(|| panic!("no {class} panel in {svg}"));
    let attr = |tag: &str, name: &str| {
        tag.split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|v| v.split('"').next())
            .map(str::to_owned)
    };
    let mut found = Vec::new();
    for tag in group.split('<').skip(1) {
        if tag.starts_with("polyline") {
            for pair in attr(tag, "points").unwrap().split(' ') {
                let (x, y) = pair.split_once(',').unwrap();
                found.push((x.parse().unwrap(), y.parse().unwrap()));
            }
        } else if tag.starts_with("circle") {
            let x = attr(tag, "cx").unwrap().parse().unwrap();
            let y = attr(tag, "cy").unwrap().parse().unwrap();
            found.push((x, y));
        }
    }
    found
}

#[tokio::test]
async fn the_dashboard_draws_the_sampled_minutes_of_the_last_day() {
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    let page = dashboard(&app).await;
    assert!(page.contains("No minute sampled yet"), "{page}");
    assert!(!page.contains("<svg"));

    let lead = fixture("lsq_lead_create.json");
    assert_eq!(
        app.post("leadsquared", "application/json", lead)
            .await
            .status(),
        200
    );
    // Three consecutive minutes two hours ago (the backlog rising, deliveries falling),
    // one an hour ago, and one older than the chart's day.
    sqlx::query(
        "INSERT INTO backlog_minutes (at, users, events, transactions, delivered)
         SELECT date_trunc('minute', now()) - m * interval '1 minute', u, e, 0, d
         FROM (VALUES (122, 100, 0, 40), (121, 300, 100, 20), (120, 600, 200, 0),
                      (60, 0, 0, 10), (1500, 5000, 0, 900)) v(m, u, e, d)",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();

    let page = dashboard(&app).await;
    let svg = page
        .split("<svg id=\"backlog-chart\"")
        .nth(1)
        .and_then(|s| s.split("</svg>").next())
        .unwrap_or_else(|| panic!("no chart in {page}"));
    let backlog = points(svg, "backlog");
    let delivered = points(svg, "delivered");
    assert_eq!(backlog.len(), 4, "one point per sample of the day: {svg}");
    assert_eq!(delivered.len(), 4, "{svg}");
    assert!(
        backlog.windows(2).all(|w| w[0].0 < w[1].0),
        "oldest first, left to right: {backlog:?}"
    );
    // Each panel is scaled to its own day's maximum (800 queued, 40 delivered): the
    // sample older than a day (5,000 and 900) is left out.
    assert!(svg.contains("up to 800"), "{svg}");
    assert!(svg.contains("up to 40"), "{svg}");
    let (top, bottom) = (backlog[2].1, backlog[3].1);
    assert!(top < bottom, "the highest backlog is drawn highest");
    assert!((backlog[1].1 - (bottom - (bottom - top) / 2.0)).abs() < 0.2);
    assert!(delivered[0].1 < delivered[1].1 && delivered[1].1 < delivered[2].1);
    // Placed by time: 62 minutes from the first sample to the last, 60 from the third.
    let (x0, x2, x3) = (backlog[0].0, backlog[2].0, backlog[3].0);
    assert!(
        ((x3 - x0) / (x3 - x2) - 62.0 / 60.0).abs() < 0.01,
        "{backlog:?}"
    );

    // The figures beside it.
    assert!(page.contains("1 users, 1 events, 0 transactions"), "{page}");
    assert!(page.contains("drains in"));
}
