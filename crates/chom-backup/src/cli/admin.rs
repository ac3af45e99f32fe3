//! `chom-backup init`, `retention apply`, `audit list`, `catalog rebuild`.

use chom_backup::Home;
use chom_backup::domain::{CalendarPolicy, Retention, RetentionPolicy};
use clap::{Args, Subcommand};

use super::module::ModuleArgs;
use super::output;
use super::{CmdResult, Failure};

/// Options of `init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Use this repository (path or s3://...) instead of one in the data directory.
    #[arg(long, value_name = "URL")]
    repo: Option<String>,
    /// Use this catalog (postgres://...) instead of SQLite in the data directory.
    #[arg(long, value_name = "URL")]
    catalog: Option<String>,
}

/// `retention` subcommands.
#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// Delete the backups a policy does not keep, then prune.
    Apply(RetentionArgs),
}

/// Which policy, and how.
#[derive(Args, Debug)]
pub struct RetentionArgs {
    /// Site name or id.
    site: String,
    /// A preset: default (10, 30 days), aggressive (5, 7), conservative (30, 90), compliance (100, 365).
    #[arg(long, conflicts_with_all = ["max_backups", "keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within_hours"])]
    policy: Option<String>,
    /// Keep at most this many completed backups.
    #[arg(long, requires = "max_age_days")]
    max_backups: Option<u32>,
    /// Delete backups older than this many days.
    #[arg(long, requires = "max_backups")]
    max_age_days: Option<u32>,
    /// Allow deleting even the newest backup when it is too old.
    #[arg(long)]
    no_keep_minimum_one: bool,
    /// Calendar policy: keep the newest N.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Keep the newest of each of the last D days.
    #[arg(long)]
    keep_daily: Option<u32>,
    /// ... of each of the last W ISO weeks.
    #[arg(long)]
    keep_weekly: Option<u32>,
    /// ... of each of the last M months.
    #[arg(long)]
    keep_monthly: Option<u32>,
    /// ... of each of the last Y years.
    #[arg(long)]
    keep_yearly: Option<u32>,
    /// Keep everything newer than this many hours.
    #[arg(long)]
    keep_within_hours: Option<u32>,
    /// Show what would go; change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl RetentionArgs {
    fn policy(&self) -> Result<Retention, Failure> {
        let calendar = CalendarPolicy {
            last: self.keep_last.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            yearly: self.keep_yearly.unwrap_or(0),
            within_hours: self.keep_within_hours.unwrap_or(0),
        };
        if calendar != CalendarPolicy::default() {
            if self.max_backups.is_some() {
                return Err(Failure::usage(
                    "choose either --max-backups/--max-age-days or --keep-* rules, not both",
                ));
            }
            calendar.validate()?;
            return Ok(Retention::Calendar(calendar));
        }
        let policy = match (&self.policy, self.max_backups, self.max_age_days) {
            (Some(name), _, _) => RetentionPolicy::preset(name)?,
            (None, Some(n), Some(d)) => RetentionPolicy::new(n, d, !self.no_keep_minimum_one)?,
            _ => {
                return Err(Failure::usage(
                    "give a policy: --policy NAME, --max-backups N --max-age-days D, or --keep-last/--keep-daily/... rules",
                ));
            }
        };
        Ok(Retention::Simple(policy))
    }
}

/// `audit` subcommands.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List audit entries, newest first.
    List {
        /// Only this site's.
        #[arg(long)]
        site: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

/// `catalog` subcommands.
#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Recreate lost site and backup records from the repository's snapshots.
    Rebuild,
}

/// `init`.
pub async fn init(args: &ModuleArgs, init: InitArgs) -> CmdResult {
    let dir = args.home_dir();
    let report = Home::init(&dir, init.repo.as_deref(), init.catalog.as_deref()).await?;
    if args.json {
        output::json(&report);
    } else {
        println!("data directory: {}", report.dir.display());
        println!("catalog:        {}", report.catalog);
        println!(
            "repository:     {} ({})",
            report.repository,
            if report.repository_created {
                "created"
            } else {
                "existing"
            }
        );
        if let Some(key) = &report.key_file {
            println!("key file:       {}", key.display());
            println!(
                "keep a copy of the key file somewhere else: without it the backups cannot be read"
            );
        }
    }
    Ok(())
}

/// `retention apply`.
pub async fn retention(args: &ModuleArgs, command: RetentionCommand) -> CmdResult {
    let RetentionCommand::Apply(r) = command;
    let policy = r.policy()?;
    let orchestrator = args.orchestrator().await?;
    let outcome = orchestrator
        .apply_retention_policy(&r.site, &policy, r.dry_run)
        .await?;
    if args.json {
        output::json(&outcome);
    } else {
        let verb = if outcome.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for (id, reason) in &outcome.deleted {
            println!("{verb} {id}: {reason}");
        }
        for (id, reason) in &outcome.kept {
            println!("keep   {id}: {reason}");
        }
        println!(
            "{verb} {} backups, kept {}",
            outcome.deleted.len(),
            outcome.kept.len()
        );
    }
    Ok(())
}

/// `audit list`.
pub async fn audit(args: &ModuleArgs, command: AuditCommand) -> CmdResult {
    let AuditCommand::List { site, limit } = command;
    let orchestrator = args.orchestrator().await?;
    let site_id = match &site {
        Some(name) => Some(orchestrator.site(name).await?.id),
        None => None,
    };
    let entries = orchestrator.catalog().audit_log(site_id, limit).await?;
    if args.json {
        output::json(&entries);
    } else {
        let mut rows = vec![
            ["TIME", "ACTOR", "ACTION", "OUTCOME", "BACKUP", "DETAIL"]
                .map(String::from)
                .to_vec(),
        ];
        for e in &entries {
            rows.push(vec![
                e.at.map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                e.actor.clone(),
                e.action.clone(),
                format!("{:?}", e.outcome).to_lowercase(),
                e.backup_id
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
                e.detail.clone().unwrap_or_default(),
            ]);
        }
        output::table(&rows);
    }
    Ok(())
}

/// `catalog rebuild`.
pub async fn catalog(args: &ModuleArgs, command: CatalogCommand) -> CmdResult {
    let CatalogCommand::Rebuild = command;
    let orchestrator = args.orchestrator().await?;
    let report = orchestrator.rebuild_catalog().await?;
    if args.json {
        output::json(&report);
    } else {
        println!(
            "{} site backups in the repository: {} backups and {} sites recreated, {} already present",
            report.snapshots, report.backups_created, report.sites_created, report.backups_present
        );
    }
    Ok(())
}
