//! `chom-backup backup ...` and `chom-backup stats`.

use std::path::PathBuf;

use chom_backup::domain::{Backup, BackupConfiguration, BackupId, BackupType, Trigger};
use chom_backup::{BackupOrchestrator, RestoreRequest, RunOptions};
use chom_repo::{ExportFormat, ExportOptions, Progress};
use clap::Subcommand;

use super::module::ModuleArgs;
use super::output::{self, bytes};
use super::progress::{self as bar, Bar};
use super::{CmdResult, Failure};

/// `backup` subcommands.
#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Back a site up now.
    Create {
        /// Site name or id.
        site: String,
        /// full, files or database.
        #[arg(long = "type", default_value = "full")]
        backup_type: String,
        /// Days to keep it (1 to 365).
        #[arg(long, default_value_t = 30)]
        retention_days: u32,
        /// Require an encrypted repository.
        #[arg(long)]
        encrypt: bool,
        /// Store without compression.
        #[arg(long, conflicts_with = "compression")]
        no_compression: bool,
        /// zstd level (1 to 22).
        #[arg(long)]
        compression: Option<i32>,
        /// Wait if the site is busy instead of failing.
        #[arg(long)]
        wait: bool,
    },
    /// List backups.
    List {
        /// Only this site's.
        #[arg(long)]
        site: Option<String>,
    },
    /// Show one backup.
    Show {
        /// Backup id (or a unique prefix).
        id: String,
    },
    /// Delete a backup (its space is freed by the next prune).
    Delete {
        /// Backup id (or a unique prefix).
        id: String,
    },
    /// Restore a backup into its site or another one.
    Restore {
        /// Backup id (or a unique prefix).
        id: String,
        /// Restore into this site instead.
        #[arg(long, value_name = "SITE")]
        to_site: Option<String>,
        /// Only files or only the database of a full backup.
        #[arg(long, value_name = "files|database")]
        only: Option<String>,
        /// Only this path, relative to the document root (repeatable).
        #[arg(long = "path", value_name = "P")]
        paths: Vec<String>,
        /// Wait if the site is busy instead of failing.
        #[arg(long)]
        wait: bool,
        /// Skip the safety backup of the target (not recommended).
        #[arg(long)]
        no_safety_backup: bool,
    },
    /// Check a backup; exit status 0 only if it is valid (3 when not).
    Verify {
        /// Backup id (or a unique prefix).
        id: String,
        /// Read back and verify every chunk of it.
        #[arg(long)]
        deep: bool,
    },
    /// Write a backup as a tar archive (.tar, .tar.gz or .tar.zst).
    Export {
        /// Backup id (or a unique prefix).
        id: String,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Accept a full id or a unique prefix of one.
async fn resolve(orchestrator: &BackupOrchestrator, text: &str) -> Result<BackupId, Failure> {
    if let Ok(id) = text.parse::<BackupId>() {
        return Ok(id);
    }
    let upper = text.to_ascii_uppercase();
    let matches: Vec<BackupId> = orchestrator
        .catalog()
        .list_backups(None)
        .await
        .map_err(chom_backup::Error::from)?
        .into_iter()
        .map(|b| b.id)
        .filter(|id| text.len() >= 4 && id.to_string().starts_with(&upper))
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(chom_backup::Error::BackupNotFound(text.to_string()).into()),
        many => Err(Failure::usage(format!(
            "backup prefix {text:?} matches {} backups; give more characters",
            many.len()
        ))),
    }
}

fn backup_row(b: &Backup, site: &str) -> Vec<String> {
    vec![
        b.id.to_string(),
        site.to_string(),
        b.backup_type().to_string(),
        b.status.as_str().to_string(),
        b.created_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        bytes(b.logical_bytes),
        b.expires_at.strftime("%Y-%m-%d").to_string(),
        b.trigger.as_str().to_string(),
    ]
}

/// Run a `backup` command.
pub async fn run(args: &ModuleArgs, command: BackupCommand) -> CmdResult {
    let orchestrator = args.orchestrator().await?;
    let show_bar = bar::wanted(args.json, args.quiet);
    match command {
        BackupCommand::Create {
            site,
            backup_type,
            retention_days,
            encrypt,
            no_compression,
            compression,
            wait,
        } => {
            let t: BackupType = backup_type.parse()?;
            let mut config = BackupConfiguration::of_type(t, retention_days)?;
            if encrypt {
                config = config.with_encryption();
            }
            if no_compression {
                config = config.without_compression();
            } else if let Some(level) = compression {
                config = config.with_compression(level)?;
            }
            let progress = Progress::new();
            let drawn = Bar::start(&progress, "backing up", show_bar);
            let run = RunOptions {
                wait,
                progress: Some(progress),
            };
            let result = orchestrator
                .create_backup(&site, config, Trigger::Manual, &run)
                .await;
            drawn.finish().await;
            let backup = result?;
            if args.json {
                output::json(&backup);
            } else {
                println!(
                    "backup {} of site {site} completed: {} files, {} ({} added to the repository), kept until {}",
                    backup.id,
                    backup.file_count,
                    bytes(backup.logical_bytes),
                    bytes(backup.added_bytes),
                    backup.expires_at.strftime("%Y-%m-%d")
                );
            }
        }
        BackupCommand::List { site } => {
            let sites = orchestrator.sites().await?;
            let site_id = match &site {
                Some(name) => Some(orchestrator.site(name).await?.id),
                None => None,
            };
            let list = orchestrator.catalog().list_backups(site_id).await?;
            if args.json {
                output::json(&list);
            } else {
                let name = |id| {
                    sites
                        .iter()
                        .find(|s| s.id == id)
                        .map(|s| s.name.clone())
                        .unwrap_or_default()
                };
                let mut rows = vec![
                    [
                        "ID", "SITE", "TYPE", "STATUS", "CREATED", "SIZE", "EXPIRES", "TRIGGER",
                    ]
                    .map(String::from)
                    .to_vec(),
                ];
                rows.extend(list.iter().map(|b| backup_row(b, &name(b.site_id))));
                output::table(&rows);
            }
        }
        BackupCommand::Show { id } => {
            let backup = orchestrator
                .backup(resolve(&orchestrator, &id).await?)
                .await?;
            if args.json {
                output::json(&backup);
            } else {
                let site = orchestrator.catalog().site(backup.site_id).await?;
                println!("id:          {}", backup.id);
                println!(
                    "site:        {}",
                    site.map(|s| s.name)
                        .unwrap_or_else(|| backup.site_id.to_string())
                );
                println!("type:        {}", backup.backup_type());
                println!("status:      {}", backup.status.as_str());
                println!("trigger:     {}", backup.trigger.as_str());
                println!("created:     {}", backup.created_at);
                println!(
                    "completed:   {}",
                    backup
                        .completed_at
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into())
                );
                println!("expires:     {}", backup.expires_at);
                println!(
                    "size:        {} in {} files",
                    bytes(backup.logical_bytes),
                    backup.file_count
                );
                println!("added:       {}", bytes(backup.added_bytes));
                println!("encrypted:   {}", backup.encrypted);
                println!(
                    "snapshot:    {}",
                    backup.snapshot_id.as_deref().unwrap_or("-")
                );
                println!("checksum:    {}", backup.checksum.as_deref().unwrap_or("-"));
                if let Some(e) = &backup.error {
                    println!("error:       {e}");
                }
            }
        }
        BackupCommand::Delete { id } => {
            let id = resolve(&orchestrator, &id).await?;
            let deleted = orchestrator
                .delete_backup(id, "deleted by an operator")
                .await?;
            if args.json {
                output::json(&serde_json::json!({ "deleted": deleted.id }));
            } else {
                println!(
                    "deleted backup {} (its space is freed by the next prune)",
                    deleted.id
                );
            }
        }
        BackupCommand::Restore {
            id,
            to_site,
            only,
            paths,
            wait,
            no_safety_backup,
        } => {
            let id = resolve(&orchestrator, &id).await?;
            let only = only
                .as_deref()
                .map(|o| match o.parse::<BackupType>() {
                    Ok(BackupType::Full) | Err(_) => Err(Failure::usage(format!(
                        "--only takes files or database, not {o:?}"
                    ))),
                    Ok(t) => Ok(t),
                })
                .transpose()?;
            let request = RestoreRequest {
                target_site: to_site,
                only,
                paths,
                skip_safety_backup: no_safety_backup,
            };
            let progress = Progress::new();
            let drawn = Bar::start(&progress, "restoring", show_bar);
            let run = RunOptions {
                wait,
                progress: Some(progress),
            };
            let result = orchestrator.restore_backup(id, &request, &run).await;
            drawn.finish().await;
            let outcome = result?;
            if args.json {
                output::json(&outcome);
            } else {
                let parts: Vec<&str> = [(outcome.files, "files"), (outcome.database, "database")]
                    .into_iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, p)| p)
                    .collect();
                println!(
                    "restored backup {} into site {} ({})",
                    outcome.backup_id,
                    outcome.target_site,
                    parts.join(" and ")
                );
                if let Some(safety) = outcome.safety_backup {
                    println!("the site's previous state is kept as safety backup {safety}");
                }
            }
        }
        BackupCommand::Verify { id, deep } => {
            let id = resolve(&orchestrator, &id).await?;
            let report = orchestrator.validate_integrity(id, deep).await?;
            if args.json {
                output::json(&report);
            } else {
                let flag = |b: bool| if b { "yes" } else { "NO" };
                println!("file exists:    {}", flag(report.file_exists));
                println!("size matches:   {}", flag(report.size_match));
                println!(
                    "checksum:       {}",
                    report.checksum_match.map(flag).unwrap_or("not recorded")
                );
                println!("not expired:    {}", flag(report.not_expired));
                if let Some(intact) = report.data_intact {
                    println!("data intact:    {}", flag(intact));
                }
                for p in &report.problems {
                    println!("problem: {p}");
                }
                println!("{}", if report.valid { "valid" } else { "INVALID" });
            }
            if !report.valid {
                let mut f = Failure::damage(format!("backup {id} is not valid"));
                f.reported = args.json;
                return Err(f);
            }
        }
        BackupCommand::Export { id, output: path } => {
            let id = resolve(&orchestrator, &id).await?;
            let backup = orchestrator.backup(id).await?;
            let snapshot = backup.snapshot_id.as_deref().ok_or_else(|| {
                Failure::from(chom_backup::Error::Conflict(format!(
                    "backup {id} is {} and has no data",
                    backup.status.as_str()
                )))
            })?;
            let snapshot = chom_repo::Id::from_hex(snapshot)?;
            let format = ExportFormat::from_file_name(&path).ok_or_else(|| {
                Failure::usage(format!(
                    "{}: name the archive .tar, .tar.gz or .tar.zst",
                    path.display()
                ))
            })?;
            let partial = path.with_extension("partial");
            let file = std::fs::File::create(&partial)
                .map_err(|e| Failure::usage(format!("cannot create {}: {e}", partial.display())))?;
            let progress = Progress::new();
            let drawn = Bar::start(&progress, "exporting", show_bar);
            let result = orchestrator
                .repository()
                .export(
                    &snapshot,
                    std::io::BufWriter::new(file),
                    format,
                    &ExportOptions::default(),
                    progress,
                )
                .await;
            drawn.finish().await;
            let summary = match result {
                Ok(s) => s,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e.into());
                }
            };
            std::fs::rename(&partial, &path)
                .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
            if args.json {
                output::json(
                    &serde_json::json!({ "backup": id, "output": path, "summary": summary }),
                );
            } else {
                println!(
                    "exported backup {id} to {}: {} files, {}",
                    path.display(),
                    summary.files,
                    bytes(summary.bytes)
                );
            }
        }
    }
    Ok(())
}

/// `stats SITE`.
pub async fn stats(args: &ModuleArgs, site: &str) -> CmdResult {
    let orchestrator = args.orchestrator().await?;
    let s = orchestrator.get_statistics(site).await?;
    if args.json {
        output::json(&s);
    } else {
        println!("site:               {}", s.site);
        println!(
            "backups:            {} ({} completed, {} failed)",
            s.total_backups, s.completed_backups, s.failed_backups
        );
        println!(
            "total size:         {} ({:.2} MB, {:.3} GB)",
            bytes(s.total_size_bytes),
            s.total_size_mb,
            s.total_size_gb
        );
        println!("stored (deduped):   {}", bytes(s.stored_bytes));
        println!(
            "last backup:        {}",
            match (s.last_backup_at, s.last_backup_status) {
                (Some(at), Some(status)) => format!("{at} ({})", status.as_str()),
                _ => "-".into(),
            }
        );
    }
    Ok(())
}
