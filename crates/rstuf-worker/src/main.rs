//! `rstuf-worker`: the RSTUF worker binary.

mod config;
mod run_task;
mod verify;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Repository Service for TUF worker.
#[derive(Debug, Parser)]
#[command(name = "rstuf-worker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a metadata directory as a TUF client would; exit 0 only if a client accepts it.
    Verify {
        /// Directory holding `N.root.json`, `timestamp.json`, `N.snapshot.json`, ...
        dir: PathBuf,
        /// Judge expiry at this time (RFC 3339), instead of now.
        #[arg(long, value_parser = parse_time)]
        time: Option<chrono::DateTime<chrono::Utc>>,
        /// Start trust from this root file instead of the directory's `1.root.json`.
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Consume tasks from the broker (`RSTUF_BROKER_SERVER`) like the reference worker's
    /// container, configured only by the `RSTUF_*` environment; stop with SIGTERM.
    Worker,
    /// Run one task payload, as the RSTUF API sends it, against the configured services
    /// (`RSTUF_*` environment variables) and print the task result JSON.
    RunTask {
        /// The action (`bootstrap`, ...).
        action: String,
        /// The payload file, or `-` for standard input; omitted means no payload.
        payload: Option<PathBuf>,
    },
    /// Make sure an online-key directory holds a key: create a fresh ed25519 key there
    /// (named by its key id, for `fn:<keyid>` URIs) unless it already holds one, and print
    /// where it is and its public key as it goes into root.
    OnlineKey {
        /// The directory (`RSTUF_ONLINE_KEY_DIR`), created if missing.
        dir: PathBuf,
    },
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2026-04-30T00:00:00Z"))
}

fn run_worker() -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let config = config::Config::from_env(&config::environment()).context("configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(worker::run(config))?;
    Ok(ExitCode::SUCCESS)
}

fn online_key(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use rstuf_adapters::key_dir::{Ensured, ensure_online_key};
    let (how, keys) = match ensure_online_key(dir)
        .with_context(|| format!("online-key directory {}", dir.display()))?
    {
        Ensured::Created(key) => ("created", vec![key]),
        Ensured::Existing(keys) => ("found", keys),
    };
    for key in keys {
        println!("online key {how}: {}", key.path.display());
        println!(
            "  key id {} ({}), URI fn:{}",
            key.keyid, key.public.scheme, key.keyid
        );
        println!("  public key {}", serde_json::to_string(&key.public)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify { dir, time, root } => verify::run(&dir, time, root.as_deref()),
        Command::RunTask { action, payload } => run_task::run(&action, payload.as_deref()),
        Command::Worker => run_worker(),
        Command::OnlineKey { dir } => online_key(&dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rstuf-worker: {e:#}");
            ExitCode::from(2)
        }
    }
}
