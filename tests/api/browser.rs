//! The support console in a real headless Chromium (chromedriver + fantoccini): log in,
//! find a lead by email, open its dead row, replay it, and watch it get delivered.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! chromedriver the test fails under CI (`CI` set) and is skipped loudly elsewhere.
//! `UPDATE_SCREENSHOTS=1 cargo test --test api browser` rewrites `docs/img/*.png`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::tools;
use crate::helpers::{ADMIN_TOKEN, API_KEY, AppOptions, LICENSE, TestApp, fixture, spawn_app};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// A chromedriver process, ended when the test ends however it ends.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver on a free port, or says why the test cannot run: Chromium and its
/// driver missing fail the test under CI (`helpers::tools`).
fn start_driver() -> Option<Driver> {
    let install = "apt-get install -y chromium chromium-driver";
    let binary = tools::required(&["chromedriver"], install)?;
    tools::required(&["chromium", "chromium-browser", "google-chrome"], install)?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        port,
        _profile: tempfile::tempdir().expect("a profile directory"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(driver)
}

async fn browser(driver: &Driver) -> Client {
    let profile = format!("--user-data-dir={}", driver._profile.path().display());
    let mut options = json!({
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", profile, "--window-size=1360,1000",
        ]
    });
    if Path::new("/usr/bin/chromium").exists() {
        options["binary"] = json!("/usr/bin/chromium");
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    // chromedriver on loopback speaks plain HTTP: no TLS connector.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// WebEngage refuses the first user once (a dead row with a real 400), then accepts all.
async fn webengage_refusing_one_user(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path(format!("/v1/accounts/{LICENSE}/users")))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"response": {"status": "error", "message": "Invalid phone number"}}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.webengage)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"response": {"status": "queued"}})),
        )
        .mount(&app.webengage)
        .await;
}

/// A bridge with a dead row for Kavya (salesforce-flow) and other leads delivered.
async fn app_with_a_dead_lead() -> (TestApp, i64) {
    let app = spawn_app(AppOptions::default()).await;
    webengage_refusing_one_user(&app).await;
    let first = app
        .post(
            "salesforce-flow",
            "application/json",
            fixture("sf_flow_lead.json"),
        )
        .await;
    assert_eq!(first.status(), 200);
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'dead'", 1)
        .await;
    for (source, ct, file) in [
        ("leadsquared", "application/json", "lsq_lead_create.json"),
        ("leadsquared", "application/json", "lsq_activity.json"),
        ("salesforce", "text/xml", "sf_outbound_lead_single.xml"),
    ] {
        assert_eq!(app.post(source, ct, fixture(file)).await.status(), 200);
    }
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status = 'pending'", 0)
        .await;
    let dead: i64 = sqlx::query_scalar("SELECT id FROM outbox WHERE status = 'dead'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    (app, dead)
}

fn screenshot_path(name: &str) -> PathBuf {
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/img")
            .join(name)
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
    }
}

async fn save_screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    let path = screenshot_path(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn support_staff_find_a_dead_lead_and_replay_it_in_a_browser() {
    let Some(driver) = start_driver() else {
        return;
    };
    let (app, dead) = app_with_a_dead_lead().await;
    let browser = browser(&driver).await;
    let result = scenario(&browser, &app, dead).await;
    browser.close().await.ok();
    result.unwrap();
}

async fn scenario(browser: &Client, app: &TestApp, dead: i64) -> Result<(), String> {
    let err = |e: fantoccini::error::CmdError| e.to_string();
    // Log in with the admin token.
    browser
        .goto(&format!("{}/admin/login", app.address))
        .await
        .map_err(err)?;
    browser
        .find(Locator::Css("input[name=token]"))
        .await
        .map_err(err)?
        .send_keys(ADMIN_TOKEN)
        .await
        .map_err(err)?;
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .map_err(err)?
        .click()
        .await
        .map_err(err)?;
    browser
        .wait()
        .for_element(Locator::Css(".cards"))
        .await
        .map_err(err)?;
    assert!(text_of(browser, "h1").await.contains("Dashboard"));

    // Search the lead by email and open its dead row.
    browser
        .goto(&format!("{}/admin/outbox", app.address))
        .await
        .map_err(err)?;
    let search = browser
        .find(Locator::Css("input[name=q]"))
        .await
        .map_err(err)?;
    search
        .send_keys("kavya.srinivasan@example.com")
        .await
        .map_err(err)?;
    browser
        .find(Locator::Css("form.search button"))
        .await
        .map_err(err)?
        .click()
        .await
        .map_err(err)?;
    // The unfiltered list already links the row: wait for the search's page first, or
    // the link found may belong to the page being replaced (a stale element).
    browser
        .wait()
        .for_element(Locator::Css(
            "input[name=q][value='kavya.srinivasan@example.com']",
        ))
        .await
        .map_err(err)?;
    let link = browser
        .wait()
        .for_element(Locator::Css(&format!("a[href='/admin/outbox/{dead}']")))
        .await
        .map_err(err)?;
    link.click().await.map_err(err)?;
    browser
        .wait()
        .for_element(Locator::Id("row-status"))
        .await
        .map_err(err)?;
    assert_eq!(text_of(browser, "#row-status").await, "dead");
    assert!(
        text_of(browser, "#payload")
            .await
            .contains("kavya.srinivasan@example.com")
    );

    // Replay it: confirm the dialog, then reload until the worker has delivered it.
    browser
        .find(Locator::Css(&format!(
            "form[action='/admin/outbox/{dead}/retry'] button"
        )))
        .await
        .map_err(err)?
        .click()
        .await
        .map_err(err)?;
    browser.accept_alert().await.map_err(err)?;
    browser
        .wait()
        .for_element(Locator::Css(".notice"))
        .await
        .map_err(err)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while text_of(browser, "#row-status").await != "delivered" {
        assert!(
            Instant::now() < deadline,
            "the replayed row was not delivered"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        browser.refresh().await.map_err(err)?;
    }
    save_screenshot(browser, "row.png").await;
    let page = browser.source().await.map_err(err)?;
    assert!(!page.contains(API_KEY) && !page.contains(ADMIN_TOKEN));

    browser
        .goto(&format!("{}/admin/", app.address))
        .await
        .map_err(err)?;
    assert!(text_of(browser, "#audit").await.contains("retry"));
    save_screenshot(browser, "dashboard.png").await;
    Ok(())
}
