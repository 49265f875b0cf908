//! Command line: clap commands, each calling one function elsewhere.

mod import;
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{
    DatabaseSettings, LogSettings, SECRETS_HELP, ServeSettings, WorkerHttpSettings,
};
use crate::mapping::MappingSet;
use crate::mapping_tools::preview;
use crate::startup::Application;
use crate::{store, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "webengage-bridge",
    version,
    about = "Moves CRM webhooks into WebEngage through a Postgres outbox"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogSettings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP server and delivery worker in one process (the default deployment).
    #[command(after_help = SECRETS_HELP)]
    Serve {
        /// Run only the HTTP side (scale the worker apart with `worker`).
        #[arg(long)]
        no_worker: bool,
        #[command(flatten)]
        settings: Box<ServeSettings>,
    },
    /// Only the delivery worker, with `/healthz`, `/readyz` and `/metrics` on
    /// BRIDGE_WORKER_LISTEN.
    #[command(after_help = SECRETS_HELP)]
    Worker {
        #[command(flatten)]
        settings: Box<ServeSettings>,
        #[command(flatten)]
        http: WorkerHttpSettings,
    },
    /// Apply the migrations and exit, creating the database when missing (`serve` and
    /// `worker` also do both at start).
    #[command(after_help = SECRETS_HELP)]
    Migrate {
        #[command(flatten)]
        database: DatabaseSettings,
    },
    /// Check, test and preview mapping files.
    Mappings {
        #[command(subcommand)]
        command: MappingsCommand,
    },
    /// Support actions on the outbox: stats, list, show, retry, cancel, replay.
    #[command(after_help = SECRETS_HELP)]
    Outbox(support::OutboxArgs),
    /// Stored CRM records: list, and re-map through today's mappings.
    #[command(after_help = SECRETS_HELP)]
    Inbound(support::InboundArgs),
    /// Ask a running bridge's `/readyz`; exit 0 when ready, 1 otherwise (for container
    /// health checks: the image has no curl).
    Healthcheck {
        /// The address the bridge listens on (0.0.0.0 is asked on 127.0.0.1). For a
        /// `worker`, pass its BRIDGE_WORKER_LISTEN.
        #[arg(long, env = "BRIDGE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// The path to ask.
        #[arg(long, default_value = "/readyz")]
        path: String,
    },
    /// Import exported CRM files (CSV, JSON lines, JSON; `.gz`; `-` for stdin) through
    /// a source's mapping; `import list|show|cancel` manage imports.
    #[command(after_help = SECRETS_HELP)]
    Import(import::ImportArgs),
    /// Delete every stored trace of one person (`--user`, `--email` or `--phone`).
    #[command(after_help = SECRETS_HELP)]
    Erase(support::EraseArgs),
}

#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Load every mapping; print every error as `file:line:col: message`; exit 1 on any.
    Check {
        #[arg(long, env = "BRIDGE_MAPPINGS_DIR", default_value = "mappings")]
        dir: PathBuf,
    },
    /// Run the mapping test cases in `DIR/tests/*.yaml`; print a diff per failing case; exit 1 on any.
    Test {
        #[arg(long, env = "BRIDGE_MAPPINGS_DIR", default_value = "mappings")]
        dir: PathBuf,
    },
    /// Print the JSON Schema of a mapping file (for editors' YAML language servers).
    Schema,
    /// Map one body without a database and print the operations as JSON.
    Preview {
        /// The source id (mapping file stem).
        #[arg(long)]
        source: String,
        #[arg(long, env = "BRIDGE_MAPPINGS_DIR", default_value = "mappings")]
        dir: PathBuf,
        /// The receive time used for a defaulted eventTime (RFC 3339); default now.
        #[arg(long)]
        now: Option<jiff::Timestamp>,
        /// The body's content type, for LeadSquared form or text bodies.
        #[arg(long)]
        content_type: Option<String>,
        /// Also list, per record, each output field with the rule and the source path
        /// (or literal, template, default) that produced it.
        #[arg(long)]
        explain: bool,
        /// The body file; `-` reads stdin.
        file: PathBuf,
    },
}

/// Exit code for settings that cannot work (clap uses 2 for usage errors too).
const EXIT_CONFIG: u8 = 2;

pub fn run() -> ExitCode {
    crate::tls::install_crypto_provider();
    let problems = crate::config::problems(Cli::command(), std::env::args_os());
    if !problems.is_empty() {
        eprintln!(
            "error: the configuration has {} problem(s):",
            problems.len()
        );
        for problem in &problems {
            eprintln!("  {problem}");
        }
        return ExitCode::from(EXIT_CONFIG);
    }
    let cli = Cli::parse();
    // Traces only for the long-running commands; kept until their work is done, so the
    // last spans are flushed on the way out.
    let exports_traces = matches!(cli.command, Command::Serve { .. } | Command::Worker { .. });
    let _telemetry = telemetry::init(cli.log.log_format, exports_traces);
    match cli.command {
        Command::Serve {
            no_worker,
            settings,
        } => serve(*settings, true, !no_worker),
        Command::Worker { settings, http } => {
            let listen = http.address().map(str::to_owned);
            serve_with(*settings, false, true, listen)
        }
        Command::Migrate { database } => migrate(&database),
        Command::Healthcheck { listen, path } => healthcheck(&listen, &path),
        Command::Mappings { command } => mappings(command),
        Command::Outbox(args) => support::outbox(args),
        Command::Inbound(args) => support::inbound(args),
        Command::Erase(args) => support::erase(args),
        Command::Import(args) => import::import(args),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn serve(settings: ServeSettings, with_http: bool, with_worker: bool) -> ExitCode {
    serve_with(settings, with_http, with_worker, None)
}

fn serve_with(
    settings: ServeSettings,
    with_http: bool,
    with_worker: bool,
    health_listen: Option<String>,
) -> ExitCode {
    let result = actix_web::rt::System::with_tokio_rt(runtime).block_on(async move {
        let app =
            Application::build_with(settings, with_http, with_worker, health_listen.as_deref())
                .await?;
        app.run_until_stopped().await
    });
    report(result)
}

fn migrate(database: &DatabaseSettings) -> ExitCode {
    let result = runtime().block_on(async {
        let pool = store::connect_creating(&database.database_url).await?;
        store::migrate(&pool).await?;
        tracing::info!("migrations applied");
        anyhow::Ok(())
    });
    report(result)
}

/// GET `path` on the bridge at `listen`: exit 0 on a 200 within 5 s, else 1 (the
/// answer, or why there was none, on stderr).
fn healthcheck(listen: &str, path: &str) -> ExitCode {
    let host = match listen.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => listen.to_owned(),
    };
    let url = format!("http://{host}{path}");
    let result = runtime().block_on(async {
        let response = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?
            .get(&url)
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "{url}: {status} {body}");
        println!("{body}");
        Ok(())
    });
    report(result)
}

fn mappings(command: MappingsCommand) -> ExitCode {
    match command {
        MappingsCommand::Check { dir } => match MappingSet::load_dir(&dir) {
            Ok(set) => {
                println!("{}: {} mapping file(s) OK", dir.display(), set.len());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                println!("{errors}");
                eprintln!("{} error(s)", errors.0.len());
                ExitCode::FAILURE
            }
        },
        MappingsCommand::Test { dir } => test_mappings(&dir),
        MappingsCommand::Schema => {
            let schema = crate::mapping_tools::schema::mapping_file_schema();
            match serde_json::to_string_pretty(&schema) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => report(Err(e.into())),
            }
        }
        MappingsCommand::Preview {
            source,
            dir,
            now,
            content_type,
            explain,
            file,
        } => report(preview(&source, &dir, now, content_type, explain, &file)),
    }
}

/// `mappings test`: every failing case with its diff, then `N passed, M failed`.
fn test_mappings(dir: &Path) -> ExitCode {
    let set = match MappingSet::load_dir(dir) {
        Ok(set) => set,
        Err(errors) => {
            println!("{errors}");
            eprintln!(
                "the mappings do not load ({} error(s)); no test ran",
                errors.0.len()
            );
            return ExitCode::FAILURE;
        }
    };
    let report = crate::mapping_tools::testing::run_tests(&set, &dir.join("tests"));
    for failure in &report.failures {
        println!("FAIL {failure}");
    }
    println!("{} passed, {} failed", report.passed, report.failures.len());
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn preview(
    source: &str,
    dir: &Path,
    now: Option<jiff::Timestamp>,
    content_type: Option<String>,
    explain: bool,
    file: &Path,
) -> anyhow::Result<()> {
    let set = MappingSet::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let body = read_input(file)?;
    let request = preview::PreviewRequest {
        source_id: source,
        body: crate::source::Body {
            content_type: content_type.as_deref(),
            bytes: &body,
        },
        received_at: now.unwrap_or_else(jiff::Timestamp::now),
        explain,
    };
    let output = preview::preview(&set, request)?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

fn read_input(file: &Path) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_end(&mut body)?;
    } else {
        body = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    Ok(body)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new duration, size or count of `serve`, `worker` or `migrate` must get its range
    /// in `config::BOUNDS` (and the docs), or nothing stops a value that overflows later.
    #[test]
    fn every_duration_size_and_count_setting_has_a_bound() {
        use clap::CommandFactory;
        use std::any::TypeId;
        use std::time::Duration;
        let numeric = [
            TypeId::of::<Duration>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
        ];
        let cli = Cli::command();
        let mut checked = 0;
        for name in ["serve", "worker", "migrate"] {
            let command = cli.find_subcommand(name).expect("the command exists");
            for arg in command.get_arguments() {
                let parsed = arg.get_value_parser().type_id();
                if numeric.iter().any(|t| parsed == *t) {
                    checked += 1;
                    let id = arg.get_id().as_str();
                    assert!(
                        crate::config::BOUNDS
                            .iter()
                            .any(|(bounded, _)| *bounded == id),
                        "`{id}` of `{name}` has no entry in config::crate::config::BOUNDS"
                    );
                }
            }
        }
        assert!(
            checked >= crate::config::BOUNDS.len(),
            "only {checked} numeric settings found"
        );
    }
}
