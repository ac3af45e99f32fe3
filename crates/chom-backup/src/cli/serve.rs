//! `chom-backup serve` and `chom-backup token ...`.

use std::net::SocketAddr;
use std::time::Duration;

use chom_backup::domain::{DomainError, Frequency, Permission, SiteScope};
use chom_backup::service::{DEFAULT_VERIFY_CRON, Service, ServiceConfig};
use clap::{Args, Subcommand};

use super::module::ModuleArgs;
use super::{CmdResult, Failure, output, parse_duration};

/// Options of `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Jobs run at once.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Time running jobs get to finish after SIGTERM.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    shutdown_timeout: Duration,
    /// Sites start within this window after their scheduled time.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    jitter: Duration,
    /// How often the scheduler looks at schedules.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    tick: Duration,
    /// A worker's lease on a job (renewed while it runs).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    lease: Duration,
    /// When the repository is pruned: daily, weekly, monthly or a cron
    /// expression (UTC).
    #[arg(long, default_value = "daily", value_parser = parse_frequency)]
    prune_schedule: Frequency,
    /// Never prune from the service (run `repo prune` yourself).
    #[arg(long, conflicts_with = "prune_schedule")]
    no_prune: bool,
    /// When each site's newest completed backup is verified, deeply (every
    /// chunk read back): daily, weekly, monthly or a cron expression (UTC).
    #[arg(long, default_value = DEFAULT_VERIFY_CRON, value_parser = parse_frequency)]
    verify_schedule: Frequency,
    /// Never verify backups from the service.
    #[arg(long, conflicts_with = "verify_schedule")]
    no_verify: bool,
    /// How long finished jobs and webhook delivery attempts are kept.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    keep_history: Duration,
    /// A site is stale when its newest completed backup is older than this
    /// many times its schedule's period.
    #[arg(long, default_value_t = 1.5, value_parser = parse_stale_factor)]
    stale_factor: f64,
}

fn parse_frequency(s: &str) -> Result<Frequency, String> {
    s.parse().map_err(|e: DomainError| e.to_string())
}

fn parse_stale_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (1.0..=100.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "{s:?} is not a factor between 1 and 100 (1.5: stale half a period after a backup was due)"
        )),
    }
}

/// `token` subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token; its secret is printed once.
    Create {
        /// Unique name (it appears in the audit log).
        name: String,
        /// Everything, on every site.
        #[arg(long, conflicts_with_all = ["sites", "allow"])]
        admin: bool,
        /// A site it may use (repeatable).
        #[arg(long = "site", value_name = "SITE")]
        sites: Vec<String>,
        /// What it may do on those sites: view, backup, restore, download, delete.
        #[arg(long, value_delimiter = ',', default_value = "view")]
        allow: Vec<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token at once.
    Revoke {
        /// Its name.
        name: String,
    },
}

/// `serve`.
pub async fn serve(module: &ModuleArgs, args: ServeArgs) -> CmdResult {
    let orchestrator = module.orchestrator().await?;
    let mut config = ServiceConfig {
        listen: args.listen,
        workers: args.workers.max(1),
        lease: args.lease.max(Duration::from_secs(3)),
        shutdown_timeout: args.shutdown_timeout,
        history: args.keep_history,
        ..ServiceConfig::default()
    };
    config.scheduler.jitter_window = args.jitter;
    config.scheduler.tick = args.tick.max(Duration::from_secs(1));
    config.scheduler.stale_factor = args.stale_factor;
    config.scheduler.prune = (!args.no_prune).then_some(args.prune_schedule);
    config.scheduler.verify = (!args.no_verify).then_some(args.verify_schedule);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    eprintln!(
        "chom-backup serving on http://{address} with {} workers",
        config.workers
    );
    let service = Service::new(orchestrator, config);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("stopping: no new jobs; waiting for running ones");
    };
    service
        .run(listener, shutdown)
        .await
        .map_err(|e| Failure::usage(format!("the HTTP server failed: {e}")))?;
    eprintln!("stopped");
    Ok(())
}

/// `token ...`.
pub async fn token(module: &ModuleArgs, command: TokenCommand) -> CmdResult {
    let orchestrator = module.orchestrator().await?;
    match command {
        TokenCommand::Create {
            name,
            admin,
            sites,
            allow,
        } => {
            let permissions = allow
                .iter()
                .map(|p| p.trim().parse::<Permission>())
                .collect::<Result<Vec<_>, _>>()?;
            let mut scopes = Vec::new();
            for site in &sites {
                scopes.push(SiteScope {
                    site_id: orchestrator.site(site).await?.id,
                    permissions: permissions.clone(),
                });
            }
            let (token, secret) = orchestrator.create_token(&name, admin, scopes).await?;
            if module.json {
                output::json(
                    &serde_json::json!({ "name": token.name, "admin": token.admin, "scopes": token.scopes, "token": secret }),
                );
            } else {
                println!("token {} created; its secret (shown only now):", token.name);
                println!("{secret}");
            }
        }
        TokenCommand::List => {
            let tokens = orchestrator.tokens().await?;
            if module.json {
                output::json(&tokens);
            } else {
                let mut rows = vec![
                    ["NAME", "KIND", "SITES", "CREATED", "REVOKED"]
                        .map(String::from)
                        .to_vec(),
                ];
                for t in &tokens {
                    rows.push(vec![
                        t.name.clone(),
                        if t.admin {
                            "admin".into()
                        } else {
                            "scoped".into()
                        },
                        t.scopes.len().to_string(),
                        t.created_at.strftime("%Y-%m-%d %H:%M").to_string(),
                        t.revoked_at
                            .map(|r| r.strftime("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_else(|| "-".into()),
                    ]);
                }
                output::table(&rows);
            }
        }
        TokenCommand::Revoke { name } => {
            orchestrator.revoke_token(&name).await?;
            if module.json {
                output::json(&serde_json::json!({ "revoked": name }));
            } else {
                println!("revoked token {name}");
            }
        }
    }
    Ok(())
}
