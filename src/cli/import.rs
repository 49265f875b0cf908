//! `import`: exported CRM files through the mappings into the outbox, and `import
//! list|show|cancel` on the imports (`crate::import`, `support::imports`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::config::DatabaseSettings;
use crate::import::{self, ImportOptions, InputFormat, Summary};
use crate::mapping::MappingSet;
use crate::store;
use crate::support::{Role, imports};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ImportArgs {
    #[command(subcommand)]
    command: Option<ImportCommand>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    database: DatabaseSettings,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The source id (mapping file stem) whose mapping reads the rows.
    #[arg(long, required = true)]
    source: Option<String>,
    /// The files' format; by default from each name (`.csv`, `.jsonl`, `.json`, each
    /// optionally `.gz`).
    #[arg(long, value_enum)]
    format: Option<InputFormat>,
    /// Map without storing: print the counts, the first bodies and the first rejects.
    #[arg(long)]
    dry_run: bool,
    /// Import at most N rows (counted from the start of the first file); the import
    /// stays open, and the same command with a higher limit, or none, continues it.
    #[arg(long)]
    limit: Option<u64>,
    /// No progress, only the summary.
    #[arg(long)]
    quiet: bool,
    /// The Salesforce object of every row (Lead, Contact, ...); by default from the
    /// Id's key prefix (00Q Lead, 003 Contact, 001 Account, 006 Opportunity).
    #[arg(long)]
    object: Option<String>,
    #[arg(long, env = "BRIDGE_MAPPINGS_DIR", default_value = "mappings")]
    mappings_dir: PathBuf,
    /// The exported files, in order; `-` reads stdin.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// The latest imports with their counts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One import: counts, state, and its outbox rows by status.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Stop an import and cancel its undelivered rows (audited as role `cli`).
    Cancel { id: i64 },
}

pub fn import(args: ImportArgs) -> ExitCode {
    let result = super::runtime().block_on(async move {
        let database = args.database;
        match args.command {
            Some(command) => {
                let pool = store::connect(&database.database_url).await?;
                store::migrate(&pool).await?;
                manage(&pool, command).await
            }
            None => run(args.run, &database).await,
        }
    });
    super::report(result)
}

async fn run(args: RunArgs, database: &DatabaseSettings) -> anyhow::Result<()> {
    let source = args.source.unwrap_or_default();
    let set = MappingSet::load_dir(&args.mappings_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mapping = set
        .get(&source)
        .cloned()
        .ok_or_else(|| import::ImportError::UnknownSource(source.clone()))?;
    let options = ImportOptions {
        source,
        format: args.format,
        dry_run: args.dry_run,
        limit: args.limit,
        quiet: args.quiet,
        object: args.object,
        files: args.files,
    };
    let pool = if options.dry_run {
        None
    } else {
        let pool = store::connect_creating(&database.database_url).await?;
        store::migrate(&pool).await?;
        Some(pool)
    };
    let summary = import::run(pool.as_ref(), Arc::clone(&mapping), &options).await?;
    print_summary(&summary, options.dry_run);
    Ok(())
}

fn print_summary(summary: &Summary, dry_run: bool) {
    let what = match summary.import_id {
        Some(id) => format!("import {id}"),
        None => "dry run".to_owned(),
    };
    let ended = if summary.interrupted {
        "interrupted; run the same command to continue"
    } else if summary.limited {
        "stopped at --limit; run it again with a higher limit, or none, to continue"
    } else if summary.cancelled {
        "stopped: the import was cancelled"
    } else {
        "done"
    };
    println!(
        "{what} {ended}: {} in {:.1}s ({:.0} rows/s)",
        summary.counts.line(),
        summary.elapsed.as_secs_f64(),
        summary.rate()
    );
    for path in &summary.rejects_files {
        println!("rejected rows: {}", path.display());
    }
    if dry_run {
        for body in &summary.first_bodies {
            println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
        }
        for rejected in &summary.first_rejects {
            println!(
                "rejected line {}: {}\n  {}",
                rejected.line,
                rejected.reason,
                rejected.row_text()
            );
        }
    }
}

async fn manage(pool: &sqlx::PgPool, command: ImportCommand) -> anyhow::Result<()> {
    match command {
        ImportCommand::List { json } => {
            let list = imports::list(pool).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            println!(
                "{:>6}  {:<10}  {:<16}  {:>10}  {:>10}  {:>10}  {:>10}  started",
                "id", "state", "source", "rows", "accepted", "duplicates", "rejected"
            );
            for i in list {
                println!(
                    "{:>6}  {:<10}  {:<16}  {:>10}  {:>10}  {:>10}  {:>10}  {}",
                    i.id,
                    i.state.as_str(),
                    i.source,
                    i.rows_done,
                    i.accepted,
                    i.duplicates,
                    i.rejected,
                    i.started_at
                );
            }
        }
        ImportCommand::Show { id, json } => {
            let detail = imports::show(pool, id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
                return Ok(());
            }
            let i = &detail.import;
            let o = &detail.outbox;
            println!(
                "import {} ({}) of source `{}`",
                i.id,
                i.state.as_str(),
                i.source
            );
            println!("files: {}", i.files.join(", "));
            println!(
                "rows read: {}; accepted {}, duplicates {}, ignored {}, stale {}, rejected {}",
                i.rows_done, i.accepted, i.duplicates, i.ignored, i.stale, i.rejected
            );
            println!(
                "outbox: {} waiting, {} in flight, {} delivered, {} dead, {} cancelled",
                o.pending, o.in_flight, o.delivered, o.dead, o.cancelled
            );
            println!("started {}; last batch {}", i.started_at, i.updated_at);
        }
        ImportCommand::Cancel { id } => {
            let rows = imports::cancel(pool, Role::Cli, id).await?;
            println!("import {id} cancelled: {rows} undelivered row(s) cancelled");
        }
    }
    Ok(())
}
