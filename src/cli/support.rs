//! `outbox ...` and `inbound ...`: the support console's actions from a terminal,
//! straight against the database (`DATABASE_URL`), through the same store and ingest
//! functions as the admin API. Every action is written to the audit log as role `cli`.

mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use self::progress::Progress;
use crate::config::DatabaseSettings;
use crate::ingest::TypeGuard;
use crate::mapping::MappingSet;
use crate::store;
use crate::store::OutboxStatus;
use crate::store::support::{self, InboundFilter, OutboxFilter, ReplayFilter};
use crate::support::actions::{self, RowAction};
use crate::support::erase::{Person, PersonRequest};
use crate::support::remap::RemapSelection;
use crate::support::search::{self as checks, SearchTerm, StatusOf};
use crate::support::{Role, remap};

/// The role the audit log records for terminal actions.
const ROLE: Role = Role::Cli;

#[derive(Debug, Args)]
pub struct OutboxArgs {
    #[command(flatten)]
    database: DatabaseSettings,
    /// Print JSON (for scripts) instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: OutboxCommand,
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// Rows per status, the oldest waiting row, inbound records per status.
    Stats,
    /// Rows newest first, filtered; `--before` takes the `next` cursor of a previous page.
    List {
        #[command(flatten)]
        filter: ListFilter,
        /// An email, phone or CRM id anywhere in the record or payload.
        #[arg(long, short)]
        q: Option<String>,
        /// Only rows of this WebEngage user id.
        #[arg(long)]
        user_id: Option<String>,
    },
    /// One row: payload, attempts, its CRM record.
    Show { id: i64 },
    /// Make a waiting, dead or cancelled row due now.
    Retry { id: i64 },
    /// Make sure a row is never sent.
    Cancel { id: i64 },
    /// Send a delivered row again, under a new x-request-id.
    Resend { id: i64 },
    /// Make every matching dead (or cancelled) row due now.
    Replay {
        /// The status to replay: `dead` or `cancelled`.
        #[arg(long, default_value = OutboxStatus::Dead.as_str())]
        status: String,
        /// Only rows of this source.
        #[arg(long)]
        source: Option<String>,
        /// Only rows created at or after this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        since: Option<OffsetDateTime>,
        /// Only count the rows that would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
struct ListFilter {
    /// Only rows of this status.
    #[arg(long)]
    status: Option<String>,
    /// Only rows of this source (mapping file stem).
    #[arg(long)]
    source: Option<String>,
    /// Rows per page (at most 500).
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Rows older than this id: the `next` cursor of the previous page.
    #[arg(long)]
    before: Option<i64>,
}

#[derive(Debug, Args)]
pub struct InboundArgs {
    #[command(flatten)]
    database: DatabaseSettings,
    /// Print JSON (for scripts) instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: InboundCommand,
}

#[derive(Debug, Subcommand)]
enum InboundCommand {
    /// Stored CRM records newest first (`mapped`, `ignored`, `stale`, `failed`, `malformed`).
    List {
        #[command(flatten)]
        filter: ListFilter,
    },
    /// Run stored records through today's mappings again: one by id, or every record of
    /// a status (all of them, with progress on stderr; `--dry-run` counts them first).
    Remap {
        /// The record to re-map; without it, every record of `--status`.
        id: Option<i64>,
        /// Re-map every record of this status (`failed`, `ignored`, `stale`, `mapped`).
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        status: Option<String>,
        /// With `--status`: only records of this source.
        #[arg(long, requires = "status")]
        source: Option<String>,
        /// With `--status`: only count the records that would be re-mapped.
        #[arg(long, requires = "status")]
        dry_run: bool,
        /// The mapping files to map with.
        #[arg(long, env = "BRIDGE_MAPPINGS_DIR", default_value = "mappings")]
        mappings_dir: PathBuf,
    },
}

/// `erase --user ID | --email E | --phone P`: one person's every stored trace.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("person").required(true).args(["user", "email", "phone"])))]
pub struct EraseArgs {
    #[command(flatten)]
    database: DatabaseSettings,
    /// The person's WebEngage user id.
    #[arg(long)]
    user: Option<String>,
    /// The person's email address.
    #[arg(long)]
    email: Option<String>,
    /// The person's phone number (matched by its digits, whatever the separators).
    #[arg(long)]
    phone: Option<String>,
    /// The spool to check for webhooks not yet stored (erasure waits for it to drain).
    #[arg(long, env = "BRIDGE_SPOOL_DIR")]
    spool_dir: Option<PathBuf>,
    /// Print JSON (for scripts).
    #[arg(long)]
    json: bool,
}

/// Erases one person's every stored trace; audited as role `cli`, without the person.
pub fn erase(args: EraseArgs) -> ExitCode {
    run(&args.database, |pool| async move {
        let person = Person::try_from(PersonRequest {
            user: args.user,
            email: args.email,
            phone: args.phone,
        })?;
        let backlog = match args.spool_dir.filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => crate::ingest::spool::Spool::open(&dir)
                .map_err(|e| anyhow::anyhow!("BRIDGE_SPOOL_DIR {}: {e}", dir.display()))?
                .has_backlog(),
            None => false,
        };
        let erased = crate::support::erase::erase(&pool, ROLE, &person, backlog).await?;
        output(args.json, &erased, || {
            println!(
                "erased {} inbound record(s), {} outbox row(s), {} delivery attempt(s), {} version fence(s); {} audit target(s) blanked",
                erased.inbound_records,
                erased.outbox_rows,
                erased.attempts,
                erased.record_versions,
                erased.audit_entries
            );
            println!("WebEngage keeps what it already received: erase the user there too.");
        })
    })
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

pub fn outbox(args: OutboxArgs) -> ExitCode {
    run(&args.database, |pool| async move {
        let json = args.json;
        match args.command {
            OutboxCommand::Stats => stats(&pool, json).await,
            OutboxCommand::List { filter, q, user_id } => {
                let query = OutboxFilter {
                    status: checks::status(filter.status.as_deref(), StatusOf::Outbox)?,
                    source: checks::value(filter.source.as_deref(), "--source")?,
                    user_id: checks::value(user_id.as_deref(), "--user-id")?,
                    q: SearchTerm::free_text(q.as_deref(), "-q")?.map(SearchTerm::into_inner),
                    ..Default::default()
                };
                let page = support::list_outbox(&pool, &query, filter.limit, filter.before).await?;
                output(json, &page, || outbox_table(&page))
            }
            OutboxCommand::Show { id } => {
                let detail = support::outbox_detail(&pool, id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no outbox row {id}"))?;
                output(json, &detail, || show_detail(&detail))
            }
            OutboxCommand::Retry { id } => act(&pool, json, RowAction::Retry, id).await,
            OutboxCommand::Cancel { id } => act(&pool, json, RowAction::Cancel, id).await,
            OutboxCommand::Resend { id } => act(&pool, json, RowAction::Resend, id).await,
            OutboxCommand::Replay {
                status,
                source,
                since,
                dry_run,
            } => {
                if !OutboxStatus::parse(&status).is_some_and(OutboxStatus::can_replay) {
                    anyhow::bail!("--status takes dead or cancelled, not `{status}`");
                }
                let target = format!(
                    "status={status} source={} since={}",
                    source.as_deref().unwrap_or("*"),
                    since.map(|t| t.to_string()).unwrap_or_else(|| "*".into())
                );
                let filter = ReplayFilter {
                    status: Some(status),
                    source: checks::value(source.as_deref(), "--source")?,
                    since,
                };
                if dry_run {
                    let rows = actions::replay_count(&pool, &filter).await?;
                    return said(json, "would replay", &target, rows);
                }
                let rows = actions::replay(&pool, ROLE, &filter).await?;
                said(json, "replay", &target, rows)
            }
        }
    })
}

pub fn inbound(args: InboundArgs) -> ExitCode {
    run(&args.database, |pool| async move {
        let json = args.json;
        match args.command {
            InboundCommand::List { filter } => {
                let query = InboundFilter {
                    status: checks::status(filter.status.as_deref(), StatusOf::Inbound)?,
                    source: checks::value(filter.source.as_deref(), "--source")?,
                };
                let page =
                    support::list_inbound(&pool, &query, filter.limit, filter.before).await?;
                output(json, &page, || inbound_table(&page))
            }
            InboundCommand::Remap {
                id,
                status,
                source,
                dry_run,
                mappings_dir,
            } => {
                let mappings = MappingSet::load_dir(&mappings_dir).map_err(|e| {
                    anyhow::anyhow!(
                        "the mappings in {} do not load:\n{e}",
                        mappings_dir.display()
                    )
                })?;
                match (id, status) {
                    (Some(id), _) => remap_one(&pool, &mappings, id, json).await,
                    (None, Some(status)) => {
                        let selection = RemapSelection::Matching(InboundFilter {
                            status: checks::status(Some(&status), StatusOf::Inbound)?,
                            source: checks::value(source.as_deref(), "--source")?,
                        });
                        remap_many(&pool, &mappings, &selection, dry_run, json).await
                    }
                    (None, None) => unreachable!("clap requires an id or --status"),
                }
            }
        }
    })
}

/// Connects, runs one command, reports its error on stderr with exit code 1.
fn run<F, Fut>(database: &DatabaseSettings, command: F) -> ExitCode
where
    F: FnOnce(PgPool) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        let pool = store::connect(&database.database_url).await?;
        command(pool).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn output<T: Serialize>(json: bool, value: &T, table: impl FnOnce()) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        table();
    }
    Ok(())
}

/// Carries out an action on one row (audited by `support`), then says what it changed.
/// An action that would change nothing is an error with the reason (exit 1).
async fn act(pool: &PgPool, json: bool, action: RowAction, id: i64) -> anyhow::Result<()> {
    let rows = actions::act_on_row(pool, ROLE, action, id).await?;
    said(json, action.as_str(), &format!("outbox {id}"), rows)
}

fn said(json: bool, action: &str, target: &str, rows: u64) -> anyhow::Result<()> {
    let value = serde_json::json!({ "action": action, "target": target, "rows": rows });
    output(json, &value, || {
        println!("{action} {target}: {rows} row(s)")
    })
}

async fn remap_one(
    pool: &PgPool,
    mappings: &MappingSet,
    id: i64,
    json: bool,
) -> anyhow::Result<()> {
    let operations =
        remap::remap_record_audited(pool, &TypeGuard::default(), mappings, id, ROLE).await?;
    let value = serde_json::json!({ "remapped": 1, "operations": operations, "errors": [] });
    output(json, &value, || {
        println!("remapped inbound {id}: {operations} outbox row(s)")
    })
}

async fn remap_many(
    pool: &PgPool,
    mappings: &MappingSet,
    selection: &RemapSelection,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let total = selection.count(pool).await?;
    let target = selection.target();
    if dry_run {
        let value = serde_json::json!({ "dry_run": true, "would_remap": total });
        return output(json, &value, || {
            println!("would remap {total} record(s) ({target})")
        });
    }
    let progress = Progress::new(total, "remapped");
    let summary = remap::remap_selection_audited(
        pool,
        &TypeGuard::default(),
        mappings,
        selection,
        ROLE,
        |s| {
            progress.set(s.done());
            std::future::ready(())
        },
    )
    .await?;
    progress.finish();
    output(json, &summary, || {
        println!(
            "remapped {} record(s) ({target}): {} outbox row(s)",
            summary.remapped, summary.operations
        );
        if summary.failed > 0 {
            println!("not remapped: {} record(s)", summary.failed);
        }
        for error in &summary.errors {
            println!("  {error}");
        }
    })
}

async fn stats(pool: &PgPool, json: bool) -> anyhow::Result<()> {
    let stats = store::stats::outbox_stats(pool).await?;
    output(json, &stats, || {
        let mut rows: Vec<Vec<String>> = OutboxStatus::ALL
            .iter()
            .map(|s| {
                let n = stats.count(*s);
                vec!["outbox".into(), s.as_str().to_owned(), n.to_string()]
            })
            .collect();
        rows.extend(
            stats
                .inbound_by_status
                .iter()
                .map(|(s, n)| vec!["inbound".into(), s.clone(), n.to_string()]),
        );
        print_table(&["table", "status", "rows"], &rows);
        println!(
            "oldest waiting row: {:.0}s",
            stats.oldest_pending_age_seconds
        );
        let backlog = &stats.backlog;
        println!(
            "queued: {} users, {} events, {} transactions; delivering {:.0} a minute; drains in {}",
            backlog.queued.users,
            backlog.queued.events,
            backlog.queued.transactions,
            backlog.delivered_per_minute,
            backlog.drain_seconds.map_or_else(
                || "? (no worker has started)".to_owned(),
                |s| humantime::format_duration(std::time::Duration::from_secs(s.ceil() as u64))
                    .to_string()
            )
        );
    })
}

fn outbox_table(page: &support::Page<support::OutboxItem>) {
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.status.to_string(),
                format!("{}/{}", i.source, i.rule),
                i.user_id.clone().unwrap_or_default(),
                i.attempts.to_string(),
                i.created_at.format(&Rfc3339).unwrap_or_default(),
                clip(i.last_error.as_deref().unwrap_or(""), 60),
            ]
        })
        .collect();
    print_table(
        &[
            "id",
            "status",
            "source/rule",
            "user",
            "attempts",
            "created",
            "last error",
        ],
        &rows,
    );
    if let Some(next) = page.next {
        println!("older: --before {next}");
    }
}

fn inbound_table(page: &support::Page<support::InboundItem>) {
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.status.to_string(),
                i.source.clone(),
                clip(&i.dedupe_key, 40),
                i.received_at.format(&Rfc3339).unwrap_or_default(),
                clip(i.error.as_deref().unwrap_or(""), 60),
            ]
        })
        .collect();
    print_table(
        &["id", "status", "source", "key", "received", "error"],
        &rows,
    );
    if let Some(next) = page.next {
        println!("older: --before {next}");
    }
}

fn show_detail(detail: &support::OutboxDetail) {
    let item = &detail.item;
    println!(
        "outbox {}  {}  {}/{} ({})",
        item.id,
        item.status,
        item.source,
        item.rule,
        item.kind.as_str()
    );
    println!("user:        {}", item.user_id.as_deref().unwrap_or("-"));
    println!("x-request-id: {}", item.request_id);
    println!("attempts:    {}", item.attempts);
    if let Some(error) = &item.last_error {
        println!("last error:  {error}");
    }
    println!(
        "\npayload:\n{}",
        serde_json::to_string_pretty(&detail.body).unwrap_or_default()
    );
    if !detail.attempts_log.is_empty() {
        println!("\nattempts:");
        let rows: Vec<Vec<String>> = detail
            .attempts_log
            .iter()
            .map(|a| {
                vec![
                    a.attempted_at.format(&Rfc3339).unwrap_or_default(),
                    a.http_status.map(|s| s.to_string()).unwrap_or_default(),
                    a.outcome.clone(),
                    format!("{} ms", a.latency_ms),
                    clip(a.response_excerpt.as_deref().unwrap_or(""), 60),
                ]
            })
            .collect();
        print_table(&["when", "http", "outcome", "latency", "response"], &rows);
    }
    if let Some(record) = &detail.inbound {
        println!("\nCRM record: inbound {} ({})", record.id, record.status);
        match (&record.payload, &record.raw_body) {
            (Some(p), _) => println!("{}", serde_json::to_string_pretty(p).unwrap_or_default()),
            (None, Some(raw)) => println!("{raw}"),
            _ => {}
        }
    }
}

/// Text cut to `max` characters, on one line, so a table stays a table.
fn clip(text: &str, max: usize) -> String {
    let line = text.replace(['\n', '\r'], " ");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    } else {
        line
    }
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        println!("(none)");
    }
}
