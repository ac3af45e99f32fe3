//! `chom-backup site ...` and `chom-backup schedule ...`.

use std::path::PathBuf;

use chom_backup::NewSite;
use chom_backup::domain::{
    BackupConfiguration, BackupType, DatabaseSpec, Frequency, PasswordRef, Site,
};
use clap::Subcommand;
use serde::Serialize;

use super::module::ModuleArgs;
use super::output;
use super::{CmdResult, Failure};

/// `site` subcommands.
#[derive(Subcommand, Debug)]
pub enum SiteCommand {
    /// Add a site.
    Add {
        /// Unique name (lowercase letters, digits, '.', '_', '-').
        name: String,
        /// The document root.
        #[arg(long)]
        root: PathBuf,
        /// Leave out matching paths (repeatable).
        #[arg(long = "exclude", value_name = "GLOB")]
        excludes: Vec<String>,
        /// The database: sqlite:PATH, mysql://USER@HOST:PORT/DB or postgres://USER@HOST:PORT/DB.
        #[arg(long, value_name = "URL")]
        db: Option<String>,
        /// File holding the database password (stored as a reference, never copied).
        #[arg(long, value_name = "FILE", conflicts_with = "db_password_env")]
        db_password_file: Option<PathBuf>,
        /// Environment variable holding the database password.
        #[arg(long, value_name = "VAR")]
        db_password_env: Option<String>,
        /// IANA time zone of its schedule and calendar retention.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Do not contact the database now.
        #[arg(long)]
        no_probe: bool,
    },
    /// List sites.
    List,
    /// Show one site.
    Show {
        /// Name or id.
        site: String,
    },
    /// Remove a site (it must have no backups).
    Remove {
        /// Name or id.
        site: String,
    },
}

/// `schedule` subcommands.
#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Back a site up automatically (the service runs schedules).
    Set {
        /// Name or id.
        site: String,
        /// daily, weekly, monthly, or a cron expression ("0 3 * * *").
        frequency: String,
        /// full, files or database.
        #[arg(long = "type", default_value = "full")]
        backup_type: String,
        /// Days each scheduled backup is kept.
        #[arg(long, default_value_t = 30)]
        retention_days: u32,
    },
    /// List schedules.
    List,
    /// Stop backing a site up automatically.
    Remove {
        /// Name or id.
        site: String,
    },
}

/// A site for JSON output: the database as a URL, the password as its
/// reference only.
#[derive(Serialize)]
struct SiteView<'a> {
    id: String,
    name: &'a str,
    root: String,
    excludes: &'a [String],
    database: Option<String>,
    database_password: Option<String>,
    timezone: &'a str,
    created_at: String,
}

fn view(site: &Site) -> SiteView<'_> {
    SiteView {
        id: site.id.to_string(),
        name: &site.name,
        root: site.root.display().to_string(),
        excludes: &site.excludes,
        database: site.database.as_ref().map(DatabaseSpec::url),
        database_password: site
            .database
            .as_ref()
            .and_then(|d| d.password.as_ref().map(|p| p.to_string())),
        timezone: &site.timezone,
        created_at: site.created_at.to_string(),
    }
}

/// Run a `site` command.
pub async fn run_site(args: &ModuleArgs, command: SiteCommand) -> CmdResult {
    let orchestrator = args.orchestrator().await?;
    match command {
        SiteCommand::Add {
            name,
            root,
            excludes,
            db,
            db_password_file,
            db_password_env,
            timezone,
            no_probe,
        } => {
            let password = match (db_password_file, db_password_env) {
                (Some(f), _) => Some(PasswordRef::File(std::path::absolute(&f).unwrap_or(f))),
                (None, Some(v)) => Some(PasswordRef::Env(v)),
                (None, None) => None,
            };
            let database = db
                .as_deref()
                .map(|url| DatabaseSpec::parse(url, password))
                .transpose()?;
            let root = std::path::absolute(&root).unwrap_or(root);
            let site = orchestrator
                .add_site(
                    NewSite {
                        name,
                        root,
                        excludes,
                        database,
                        timezone: Some(timezone),
                    },
                    !no_probe,
                )
                .await?;
            if args.json {
                output::json(&view(&site));
            } else {
                println!("added site {} ({})", site.name, site.id);
            }
        }
        SiteCommand::List => {
            let sites = orchestrator.sites().await?;
            if args.json {
                output::json(&sites.iter().map(view).collect::<Vec<_>>());
            } else {
                let mut rows = vec![
                    ["NAME", "ROOT", "DATABASE", "ID"]
                        .map(String::from)
                        .to_vec(),
                ];
                for s in &sites {
                    rows.push(vec![
                        s.name.clone(),
                        s.root.display().to_string(),
                        s.database
                            .as_ref()
                            .map(DatabaseSpec::url)
                            .unwrap_or_else(|| "-".into()),
                        s.id.to_string(),
                    ]);
                }
                output::table(&rows);
            }
        }
        SiteCommand::Show { site } => {
            let site = orchestrator.site(&site).await?;
            let schedule = orchestrator.catalog().schedule(site.id).await?;
            if args.json {
                output::json(&serde_json::json!({ "site": view(&site), "schedule": schedule }));
            } else {
                let v = view(&site);
                println!("name:      {}", v.name);
                println!("id:        {}", v.id);
                println!("root:      {}", v.root);
                println!(
                    "excludes:  {}",
                    if v.excludes.is_empty() {
                        "-".into()
                    } else {
                        v.excludes.join(" ")
                    }
                );
                println!("database:  {}", v.database.as_deref().unwrap_or("-"));
                println!(
                    "password:  {}",
                    v.database_password.as_deref().unwrap_or("-")
                );
                println!("timezone:  {}", v.timezone);
                match schedule {
                    Some(s) => println!(
                        "schedule:  {} {} backups kept {} days",
                        s.frequency,
                        s.configuration.backup_type(),
                        s.configuration.retention_days()
                    ),
                    None => println!("schedule:  -"),
                }
            }
        }
        SiteCommand::Remove { site } => {
            let removed = orchestrator.remove_site(&site).await?;
            if args.json {
                output::json(&serde_json::json!({ "removed": removed.id.to_string() }));
            } else {
                println!("removed site {}", removed.name);
            }
        }
    }
    Ok(())
}

/// Run a `schedule` command.
pub async fn run_schedule(args: &ModuleArgs, command: ScheduleCommand) -> CmdResult {
    let orchestrator = args.orchestrator().await?;
    match command {
        ScheduleCommand::Set {
            site,
            frequency,
            backup_type,
            retention_days,
        } => {
            let frequency: Frequency = frequency.parse()?;
            let t: BackupType = backup_type.parse()?;
            let config = BackupConfiguration::of_type(t, retention_days)?;
            let schedule = orchestrator
                .schedule_automatic_backup(&site, frequency, config)
                .await?;
            if args.json {
                output::json(&schedule);
            } else {
                println!(
                    "site {site} is backed up {} ({} backups kept {} days)",
                    schedule.frequency,
                    schedule.configuration.backup_type(),
                    schedule.configuration.retention_days()
                );
            }
        }
        ScheduleCommand::List => {
            let schedules = orchestrator.catalog().list_schedules().await?;
            let sites = orchestrator.sites().await?;
            let name = |id| {
                sites
                    .iter()
                    .find(|s| s.id == id)
                    .map(|s| s.name.clone())
                    .unwrap_or_default()
            };
            if args.json {
                let items: Vec<serde_json::Value> = schedules
                    .iter()
                    .map(|s| serde_json::json!({ "site": name(s.site_id), "schedule": s }))
                    .collect();
                output::json(&items);
            } else {
                let mut rows = vec![
                    ["SITE", "FREQUENCY", "TYPE", "RETENTION"]
                        .map(String::from)
                        .to_vec(),
                ];
                for s in &schedules {
                    rows.push(vec![
                        name(s.site_id),
                        s.frequency.to_string(),
                        s.configuration.backup_type().to_string(),
                        format!("{} days", s.configuration.retention_days()),
                    ]);
                }
                output::table(&rows);
            }
        }
        ScheduleCommand::Remove { site } => {
            let removed = orchestrator.remove_schedule(&site).await?;
            if args.json {
                output::json(&serde_json::json!({ "removed": removed }));
            } else if removed {
                println!("removed the schedule of site {site}");
            } else {
                return Err(Failure::from(chom_backup::Error::Conflict(format!(
                    "site {site} has no schedule"
                ))));
            }
        }
    }
    Ok(())
}
