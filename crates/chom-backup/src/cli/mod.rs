//! The command line: definitions, dispatch, and how failures become exit
//! statuses and messages.
//!
//! Exit statuses: 0 success; 1 error; 2 bad usage; 3 damage found (check,
//! verify).

mod admin;
mod backup;
mod demo;
mod keys;
mod module;
mod output;
mod progress;
mod repo;
mod serve;
mod site;
mod storage;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A failed command: what to print and which status to exit with.
#[derive(Debug)]
pub struct Failure {
    /// Stable machine-readable kind (`wrong_password`, `damaged`, ...).
    pub kind: &'static str,
    /// The message for people.
    pub message: String,
    /// Exit status.
    pub code: u8,
    /// The command already printed its JSON report; print no error object.
    pub reported: bool,
}

impl Failure {
    /// Bad usage the parser could not catch.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            kind: "usage",
            message: message.into(),
            code: 2,
            reported: false,
        }
    }

    /// Damage found (exit 3).
    pub fn damage(message: impl Into<String>) -> Self {
        Failure {
            kind: "damaged",
            message: message.into(),
            code: 3,
            reported: false,
        }
    }
}

impl Failure {
    /// A failure from an engine error, with a message chosen by the caller.
    pub fn from_repo_ref(e: &chom_repo::Error, message: String) -> Self {
        use chom_repo::Error as E;
        let kind = match e {
            E::WrongPassword { .. } => "wrong_password",
            E::PasswordRequired { .. } => "password_required",
            E::NotARepository { .. } => "not_a_repository",
            E::AlreadyInitialized { .. } => "already_initialized",
            E::StorageUnreachable { .. } => "storage_unreachable",
            E::Storage { .. } => "storage_error",
            E::MissingObject { .. } | E::Damaged { .. } => "damaged",
            E::Locked { .. } => "locked",
            E::LockLost { .. } => "lock_lost",
            E::SnapshotNotFound(_) | E::PathNotFound(_) => "not_found",
            E::AmbiguousSnapshot { .. } => "ambiguous",
            E::UnsafeEntry { .. } => "unsafe_entry",
            E::InvalidInput(_) => "invalid_input",
            E::Io { .. } => "io",
            E::UnsupportedVersion { .. } => "unsupported_version",
            E::Cancelled => "cancelled",
            _ => "error",
        };
        Failure {
            kind,
            message,
            code: 1,
            reported: false,
        }
    }
}

impl From<chom_repo::Error> for Failure {
    fn from(e: chom_repo::Error) -> Self {
        let message = e.to_string();
        Failure::from_repo_ref(&e, message)
    }
}

/// Result of a command.
pub type CmdResult = Result<(), Failure>;

#[derive(Parser)]
#[command(
    name = "chom-backup",
    version,
    about = "Backups of hosting sites into deduplicated, compressed, encrypted repositories",
    after_help = "Exit status: 0 success, 1 error, 2 bad usage, 3 damage found (check, verify)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up the data directory: catalog, configuration, and a repository.
    Init {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(flatten)]
        init: admin::InitArgs,
    },
    /// Manage sites (a document root and usually a database).
    Site {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(subcommand)]
        command: site::SiteCommand,
    },
    /// Create, list, restore, verify, export and delete site backups.
    Backup {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
    /// Statistics of a site's backups.
    Stats {
        #[command(flatten)]
        module: module::ModuleArgs,
        /// Site name or id.
        site: String,
    },
    /// Apply retention policies.
    Retention {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(subcommand)]
        command: admin::RetentionCommand,
    },
    /// Automatic backups.
    Schedule {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(subcommand)]
        command: site::ScheduleCommand,
    },
    /// The audit log.
    Audit {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(subcommand)]
        command: admin::AuditCommand,
    },
    /// The repository's passwords (key slots), audited.
    Key {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(subcommand)]
        command: keys::KeyCommand,
    },
    /// Catalog maintenance.
    Catalog {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(subcommand)]
        command: admin::CatalogCommand,
    },
    /// Whole files kept under keys in the repository (store, retrieve, list, delete).
    Storage {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(subcommand)]
        command: storage::StorageCommand,
    },
    /// Run the service: HTTP API, scheduler and job workers.
    Serve {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(flatten)]
        serve: serve::ServeArgs,
    },
    /// API tokens for the service.
    Token {
        #[command(flatten)]
        module: module::ModuleArgs,
        #[command(subcommand)]
        command: serve::TokenCommand,
    },
    /// Run the main job end to end on a sample site (no server, no setup).
    Demo(demo::DemoArgs),
    /// Work with a repository directly (init, backup, restore, check, prune, ...).
    Repo(repo::RepoArgs),
}

/// Parse arguments, run the command on a Tokio runtime, report the outcome.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let json = match &cli.command {
        Command::Repo(args) => args.global.json,
        Command::Demo(_) => false,
        Command::Init { module, .. }
        | Command::Site { module, .. }
        | Command::Backup { module, .. }
        | Command::Stats { module, .. }
        | Command::Retention { module, .. }
        | Command::Schedule { module, .. }
        | Command::Audit { module, .. }
        | Command::Key { module, .. }
        | Command::Serve { module, .. }
        | Command::Storage { module, .. }
        | Command::Token { module, .. }
        | Command::Catalog { module, .. } => module.json,
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Init { module, init } => admin::init(&module, init).await,
            Command::Site { module, command } => site::run_site(&module, command).await,
            Command::Backup { module, command } => backup::run(&module, command).await,
            Command::Stats { module, site } => backup::stats(&module, &site).await,
            Command::Retention { module, command } => admin::retention(&module, command).await,
            Command::Schedule { module, command } => site::run_schedule(&module, command).await,
            Command::Audit { module, command } => admin::audit(&module, command).await,
            Command::Key { module, command } => keys::run(&module, command).await,
            Command::Serve { module, serve } => serve::serve(&module, serve).await,
            Command::Storage { module, command } => storage::run(&module, command).await,
            Command::Token { module, command } => serve::token(&module, command).await,
            Command::Catalog { module, command } => admin::catalog(&module, command).await,
            Command::Repo(args) => repo::run(args).await,
            Command::Demo(args) => demo::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if json && !failure.reported {
                output::json(&serde_json::json!({
                    "error": { "kind": failure.kind, "message": failure.message }
                }));
            }
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHOM_BACKUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}

/// Parse a duration: `0`, `90s`, `30m`, `23h`, `2d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 0, 90s, 30m, 23h or 2d"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("unknown unit in {text:?}: use s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap().as_secs(), 0);
        assert_eq!(parse_duration("23h").unwrap().as_secs(), 23 * 3600);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 2 * 86400);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
