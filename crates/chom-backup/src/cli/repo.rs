//! `chom-backup repo ...`: the storage engine's commands.
//!
//! The repository comes from `--repo URL` or `CHOM_BACKUP_REPOSITORY`; the
//! password from `--password-file F` or `CHOM_BACKUP_PASSWORD` (never from
//! the command line, where other users could read it).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chom_repo::{
    BackupOptions, CheckOptions, ExportFormat, ExportOptions, Id, InitOptions, KdfParams,
    ParentSelection, Progress, PruneOptions, ReadData, Repository, RestoreOptions, Snapshot,
    Source, Storage,
};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{self, bytes};
use super::progress::{self as bar, Bar};
use super::{CmdResult, Failure, parse_duration};

/// Options shared by every `repo` command.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Repository: a path, file://PATH or s3://BUCKET/PREFIX[?endpoint=URL&region=R].
    #[arg(
        long = "repo",
        env = "CHOM_BACKUP_REPOSITORY",
        global = true,
        value_name = "URL"
    )]
    repo: Option<String>,
    /// Read the repository password from this file (else CHOM_BACKUP_PASSWORD).
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// A lock not refreshed for this long is stale (e.g. 30m, 2h).
    #[arg(long, global = true, default_value = "30m", value_parser = parse_duration, value_name = "DURATION")]
    stale_lock_after: Duration,
}

/// `repo` and its subcommand.
#[derive(Args, Debug)]
pub struct RepoArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    command: RepoCommand,
}

#[derive(Subcommand, Debug)]
enum RepoCommand {
    /// Create a repository.
    Init {
        /// Store data unencrypted (every command will warn).
        #[arg(long)]
        no_encryption: bool,
        /// Target pack size in MiB.
        #[arg(long, default_value_t = 16, value_name = "MIB")]
        pack_size: u32,
        /// Default zstd level (0 = none, 1-22).
        #[arg(long, default_value_t = 3)]
        compression: i32,
        /// Chunk sizes MIN,AVG,MAX in KiB (AVG a power of two); see docs/FORMAT.md.
        #[arg(long, value_name = "MIN,AVG,MAX", value_parser = parse_chunker)]
        chunker: Option<chom_repo::ChunkerParams>,
    },
    /// Back up paths (and/or standard input) into a new snapshot.
    Backup {
        /// Files or directories; each is stored at the snapshot root under its name.
        paths: Vec<PathBuf>,
        /// Label the snapshot with key=value (repeatable).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// Leave out matching paths (repeatable; see docs for the syntax).
        #[arg(long = "exclude", value_name = "GLOB")]
        excludes: Vec<String>,
        /// Also store standard input as a file at this path in the snapshot.
        #[arg(long, value_name = "NAME")]
        stdin_name: Option<String>,
        /// Host name to record.
        #[arg(long)]
        host: Option<String>,
        /// Read every file, ignoring the parent snapshot.
        #[arg(long)]
        force: bool,
        /// zstd level for this backup (default: the repository's).
        #[arg(long)]
        compression: Option<i32>,
    },
    /// List snapshots.
    Snapshots {
        /// Only snapshots with this key=value tag (repeatable).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// List the content of a snapshot.
    Ls {
        /// Snapshot id, unique prefix, or `latest`.
        snapshot: String,
        /// Only below this path.
        path: Option<String>,
        /// With `latest`: the newest snapshot carrying these tags.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Restore a snapshot into a directory.
    Restore {
        /// Snapshot id, unique prefix, or `latest`.
        snapshot: String,
        /// Directory to restore into (created if missing).
        #[arg(long)]
        target: PathBuf,
        /// Restore only this path of the snapshot (repeatable).
        #[arg(long = "include", value_name = "PATH")]
        includes: Vec<String>,
        /// With `latest`: the newest snapshot carrying these tags.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Show what changed between two snapshots.
    Diff {
        /// First snapshot.
        a: String,
        /// Second snapshot.
        b: String,
    },
    /// Remove snapshots (their data is freed by `prune`).
    Forget {
        /// Snapshot ids or unique prefixes.
        #[arg(required = true)]
        snapshots: Vec<String>,
    },
    /// Free the space of data no snapshot needs (backups may keep running).
    Prune {
        /// Repack packs with more than this percentage unused.
        #[arg(long, default_value_t = 5.0, value_name = "PCT")]
        max_unused: f64,
        /// Wait this long between marking data unused and deleting it (0 for emergencies).
        #[arg(long, default_value = "23h", value_parser = parse_duration, value_name = "DURATION")]
        grace: Duration,
        /// Show what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Verify the repository; exit status 3 when damage is found.
    Check {
        /// Read and verify all pack data.
        #[arg(long, conflicts_with = "read_data_subset")]
        read_data: bool,
        /// Read and verify this percentage of the packs, chosen at random.
        #[arg(long, value_name = "PCT")]
        read_data_subset: Option<f64>,
    },
    /// Write a snapshot as a tar archive (GNU tar extracts it).
    Export {
        /// Snapshot id, unique prefix, or `latest`.
        snapshot: String,
        /// Output file (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// tar, tar.gz or tar.zst (default: from the file name, else tar).
        #[arg(long)]
        format: Option<String>,
        /// Export only this path of the snapshot (repeatable).
        #[arg(long = "include", value_name = "PATH")]
        includes: Vec<String>,
        /// With `latest`: the newest snapshot carrying these tags.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Sizes, deduplication and compression of the repository.
    Stats,
    /// Manage password key slots.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Rebuild the index from the packs' headers.
    RepairIndex,
    /// Remove stale locks (or all locks with --all).
    Unlock {
        /// Remove every lock, also live ones (only when no command runs).
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Add a key slot for another password (from --new-password-file or CHOM_BACKUP_NEW_PASSWORD).
    Add {
        /// File holding the new password.
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// List key slots.
    List,
    /// Remove a key slot (not the one in use).
    Remove {
        /// Key slot id or unique prefix.
        id: String,
    },
    /// Change the password of the slot in use.
    Passwd {
        /// File holding the new password.
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
}

fn read_secret_file(path: &Path, what: &str) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::usage(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn password(global: &GlobalArgs) -> Result<Option<String>, Failure> {
    if let Some(file) = &global.password_file {
        return read_secret_file(file, "password").map(Some);
    }
    Ok(std::env::var("CHOM_BACKUP_PASSWORD").ok())
}

fn new_password(file: &Option<PathBuf>) -> Result<String, Failure> {
    match file {
        Some(f) => read_secret_file(f, "new password"),
        None => std::env::var("CHOM_BACKUP_NEW_PASSWORD").map_err(|_| {
            Failure::usage(
                "give the new password with --new-password-file FILE or CHOM_BACKUP_NEW_PASSWORD",
            )
        }),
    }
}

fn repo_url(global: &GlobalArgs) -> Result<&str, Failure> {
    global.repo.as_deref().ok_or_else(|| {
        Failure::usage("no repository given: pass --repo URL or set CHOM_BACKUP_REPOSITORY")
    })
}

async fn open(global: &GlobalArgs) -> Result<Repository, Failure> {
    let storage = Storage::open(repo_url(global)?, false)?;
    let repo = Repository::open(storage, password(global)?.as_deref())
        .await?
        .with_stale_lock_after(global.stale_lock_after);
    if !repo.is_encrypted() {
        eprintln!(
            "warning: the repository at {} is not encrypted",
            repo.storage().location()
        );
    }
    Ok(repo)
}

fn tags(list: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    Ok(chom_repo::parse_tags(list)?)
}

/// Cancel `progress` on Ctrl-C or SIGTERM, so an interrupted operation stops
/// cleanly (a backup then commits nothing).
fn cancel_on_signal(progress: &Arc<Progress>) -> tokio::task::JoinHandle<()> {
    let progress = progress.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("interrupted: stopping");
        progress.cancel();
    })
}

#[derive(Serialize)]
struct SnapshotJson<'a> {
    id: Id,
    short_id: String,
    #[serde(flatten)]
    snapshot: &'a Snapshot,
}

fn snapshot_json(id: &Id, snapshot: &Snapshot) -> serde_json::Value {
    serde_json::to_value(SnapshotJson {
        id: *id,
        short_id: id.short(),
        snapshot,
    })
    .expect("snapshot serializes")
}

fn format_tags(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn local_time(t: &jiff::Timestamp) -> String {
    t.to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Run a `repo` command.
pub async fn run(args: RepoArgs) -> CmdResult {
    let g = args.global;
    let show_bar = bar::wanted(g.json, g.quiet);
    match args.command {
        RepoCommand::Init {
            no_encryption,
            pack_size,
            compression,
            chunker,
        } => {
            let storage = Storage::open(repo_url(&g)?, true)?;
            let mut opts = InitOptions::default();
            opts.encrypt = !no_encryption;
            opts.pack_size = pack_size.saturating_mul(1024 * 1024);
            opts.compression_level = compression;
            if let Some(chunker) = chunker {
                opts.chunker = chunker;
            }
            let pw = password(&g)?;
            let repo = Repository::init(storage, pw.as_deref(), opts).await?;
            if g.json {
                output::json(&serde_json::json!({
                    "location": repo.storage().location(),
                    "id": repo.config().id,
                    "encrypted": repo.is_encrypted(),
                }));
            } else {
                println!(
                    "created {} repository {} at {}",
                    if repo.is_encrypted() {
                        "encrypted"
                    } else {
                        "UNENCRYPTED"
                    },
                    repo.config().id.short(),
                    repo.storage().location()
                );
            }
            Ok(())
        }
        RepoCommand::Backup {
            paths,
            tags: tag_list,
            excludes,
            stdin_name,
            host,
            force,
            compression,
        } => {
            let repo = open(&g).await?;
            let mut sources: Vec<Source> = paths.iter().map(Source::path).collect();
            if let Some(name) = &stdin_name {
                if std::io::stdin().is_terminal() {
                    return Err(Failure::usage(
                        "--stdin-name reads standard input, but it is a terminal: pipe the data in",
                    ));
                }
                sources.push(Source::stream(name, std::io::stdin()));
            }
            let mut opts = BackupOptions::default();
            opts.tags = tags(&tag_list)?;
            opts.excludes = excludes;
            opts.host = host;
            opts.parent = if force {
                ParentSelection::None
            } else {
                ParentSelection::Auto
            };
            opts.compression_level = compression;
            opts.estimate_totals = show_bar;
            let progress = Progress::new();
            let signals = cancel_on_signal(&progress);
            let drawn = Bar::start(&progress, "backing up", show_bar);
            let result = repo.backup(sources, &opts, progress).await;
            drawn.finish().await;
            signals.abort();
            let done = result?;
            let s = &done.snapshot.summary;
            for skipped in &s.skipped {
                eprintln!("warning: skipped {skipped}");
            }
            if g.json {
                output::json(&snapshot_json(&done.id, &done.snapshot));
            } else {
                println!(
                    "snapshot {} saved: {} files ({} new, {} changed, {} unchanged), {} dirs",
                    done.id.short(),
                    s.files,
                    s.files_new,
                    s.files_changed,
                    s.files_unchanged,
                    s.dirs
                );
                println!(
                    "read {}, added {}, stored {} in {:.1} s",
                    bytes(s.bytes_read),
                    bytes(s.bytes_added),
                    bytes(s.bytes_stored),
                    s.duration_ms as f64 / 1000.0
                );
            }
            Ok(())
        }
        RepoCommand::Snapshots { tags: tag_list } => {
            let repo = open(&g).await?;
            let filter = tags(&tag_list)?;
            let list: Vec<(Id, Snapshot)> = repo
                .snapshots()
                .await?
                .into_iter()
                .filter(|(_, s)| s.has_tags(&filter))
                .collect();
            if g.json {
                let items: Vec<serde_json::Value> =
                    list.iter().map(|(id, s)| snapshot_json(id, s)).collect();
                output::json(&items);
            } else {
                let mut rows = vec![
                    vec!["ID", "TIME", "HOST", "TAGS", "SIZE", "PATHS"]
                        .into_iter()
                        .map(String::from)
                        .collect(),
                ];
                for (id, s) in &list {
                    rows.push(vec![
                        id.short(),
                        local_time(&s.time),
                        s.host.clone(),
                        format_tags(&s.tags),
                        bytes(s.summary.total_bytes),
                        s.paths.join(" "),
                    ]);
                }
                output::table(&rows);
                println!("{} snapshots", list.len());
            }
            Ok(())
        }
        RepoCommand::Ls {
            snapshot,
            path,
            tags: tag_list,
        } => {
            let repo = open(&g).await?;
            let (id, _) = repo.find_snapshot(&snapshot, &tags(&tag_list)?).await?;
            let entries = repo.ls(&id, path.as_deref().unwrap_or("")).await?;
            if g.json {
                output::json(&entries);
            } else {
                for e in entries {
                    let kind = match e.kind {
                        chom_repo::NodeKind::Dir => 'd',
                        chom_repo::NodeKind::File => '-',
                        chom_repo::NodeKind::Symlink => 'l',
                    };
                    let target = e.target.map(|t| format!(" -> {t}")).unwrap_or_default();
                    println!(
                        "{kind} {:04o} {:>5} {:>5} {:>12} {}{target}",
                        e.mode, e.uid, e.gid, e.size, e.path
                    );
                }
            }
            Ok(())
        }
        RepoCommand::Restore {
            snapshot,
            target,
            includes,
            tags: tag_list,
        } => {
            let repo = open(&g).await?;
            let (id, _) = repo.find_snapshot(&snapshot, &tags(&tag_list)?).await?;
            let mut opts = RestoreOptions::default();
            opts.includes = includes;
            let progress = Progress::new();
            let drawn = Bar::start(&progress, "restoring", show_bar);
            let result = repo.restore(&id, &target, &opts, progress).await;
            drawn.finish().await;
            let summary = result?;
            if g.json {
                output::json(
                    &serde_json::json!({ "snapshot": id, "target": target, "summary": summary }),
                );
            } else {
                println!(
                    "restored snapshot {} to {}: {} files, {} dirs, {} symlinks, {} in {:.1} s",
                    id.short(),
                    target.display(),
                    summary.files,
                    summary.dirs,
                    summary.symlinks,
                    bytes(summary.bytes),
                    summary.duration_ms as f64 / 1000.0
                );
            }
            Ok(())
        }
        RepoCommand::Diff { a, b } => {
            let repo = open(&g).await?;
            let none = BTreeMap::new();
            let (ida, _) = repo.find_snapshot(&a, &none).await?;
            let (idb, _) = repo.find_snapshot(&b, &none).await?;
            let changes = repo.diff(&ida, &idb).await?;
            if g.json {
                output::json(&changes);
            } else {
                for c in &changes {
                    let mark = match c.change {
                        chom_repo::Change::Added => "+",
                        chom_repo::Change::Removed => "-",
                        chom_repo::Change::Modified => "M",
                        chom_repo::Change::Metadata => "U",
                    };
                    println!("{mark}  {}", c.path);
                }
                println!("{} changes", changes.len());
            }
            Ok(())
        }
        RepoCommand::Forget { snapshots } => {
            let repo = open(&g).await?;
            let none = BTreeMap::new();
            let mut ids = Vec::new();
            for spec in &snapshots {
                if spec == "latest" {
                    return Err(Failure::usage(
                        "forget takes explicit snapshot ids, not `latest`",
                    ));
                }
                ids.push(repo.find_snapshot(spec, &none).await?.0);
            }
            repo.forget(&ids).await?;
            if g.json {
                output::json(&serde_json::json!({ "forgotten": ids }));
            } else {
                for id in &ids {
                    println!("forgot snapshot {}", id.short());
                }
                println!("run `repo prune` to free the space");
            }
            Ok(())
        }
        RepoCommand::Prune {
            max_unused,
            grace,
            dry_run,
        } => {
            let repo = open(&g).await?;
            let mut opts = PruneOptions::default();
            opts.max_unused_percent = max_unused;
            opts.grace = grace;
            opts.dry_run = dry_run;
            let progress = Progress::new();
            let drawn = Bar::start(&progress, "repacking", show_bar);
            let result = repo.prune(&opts, progress).await;
            drawn.finish().await;
            let r = result?;
            if g.json {
                output::json(&r);
            } else {
                let verb = if r.dry_run { "would" } else { "did" };
                println!("{} snapshots need {} blobs", r.snapshots, r.used_blobs);
                println!(
                    "packs: {} kept, {} marked unused, {} repacked into {}, {} revived",
                    r.packs_kept,
                    r.packs_marked,
                    r.packs_repacked,
                    r.packs_written,
                    r.packs_revived
                );
                println!(
                    "{verb} delete {} packs ({}); {} packs ({}) wait for their grace period or a running backup",
                    r.packs_deleted,
                    bytes(r.bytes_deleted),
                    r.packs_waiting,
                    bytes(r.bytes_waiting)
                );
            }
            Ok(())
        }
        RepoCommand::Check {
            read_data,
            read_data_subset,
        } => {
            let repo = open(&g).await?;
            let mut opts = CheckOptions::default();
            opts.read_data = match (read_data, read_data_subset) {
                (true, _) => ReadData::All,
                (false, Some(p)) => ReadData::Subset(p),
                (false, None) => ReadData::None,
            };
            let progress = Progress::new();
            let drawn = Bar::start(
                &progress,
                "checking",
                show_bar && opts.read_data != ReadData::None,
            );
            let result = repo.check(&opts, progress).await;
            drawn.finish().await;
            let report = result?;
            if g.json {
                output::json(&report);
            } else {
                println!(
                    "checked {} snapshots, {} trees, {} packs ({} read, {})",
                    report.snapshots,
                    report.trees,
                    report.packs,
                    report.packs_read,
                    bytes(report.bytes_read)
                );
                for note in &report.notes {
                    println!("note: {note}");
                }
                for p in &report.problems {
                    let affected = if p.snapshots.is_empty() {
                        String::new()
                    } else {
                        let ids: Vec<String> = p.snapshots.iter().map(Id::short).collect();
                        format!(" (affects snapshots {})", ids.join(", "))
                    };
                    println!("damaged: {}: {}{affected}", p.object, p.reason);
                }
                if report.is_ok() {
                    println!("no problems found");
                }
            }
            if report.is_ok() {
                Ok(())
            } else {
                let mut f =
                    Failure::damage(format!("check found {} problems", report.problems.len()));
                f.reported = g.json;
                Err(f)
            }
        }
        RepoCommand::Export {
            snapshot,
            output: out_path,
            format,
            includes,
            tags: tag_list,
        } => {
            let repo = open(&g).await?;
            let (id, _) = repo.find_snapshot(&snapshot, &tags(&tag_list)?).await?;
            let format = match (&format, &out_path) {
                (Some(f), _) => ExportFormat::parse(f)?,
                (None, Some(p)) => ExportFormat::from_file_name(p).unwrap_or(ExportFormat::Tar),
                (None, None) => ExportFormat::Tar,
            };
            let mut opts = ExportOptions::default();
            opts.includes = includes;
            let progress = Progress::new();
            let summary = match out_path.filter(|p| p.as_os_str() != "-") {
                Some(path) => {
                    let partial = partial_path(&path);
                    let file = std::fs::File::create(&partial).map_err(|e| {
                        Failure::usage(format!("cannot create {}: {e}", partial.display()))
                    })?;
                    let drawn = Bar::start(&progress, "exporting", show_bar);
                    let result = repo
                        .export(&id, std::io::BufWriter::new(file), format, &opts, progress)
                        .await;
                    drawn.finish().await;
                    match result {
                        Ok(summary) => {
                            std::fs::rename(&partial, &path).map_err(|e| {
                                Failure::usage(format!(
                                    "cannot move the export to {}: {e}",
                                    path.display()
                                ))
                            })?;
                            summary
                        }
                        Err(e) => {
                            let _ = std::fs::remove_file(&partial);
                            return Err(e.into());
                        }
                    }
                }
                None => {
                    if std::io::stdout().is_terminal() {
                        return Err(Failure::usage(
                            "refusing to write a tar archive to a terminal: use -o FILE or a pipe",
                        ));
                    }
                    repo.export(&id, std::io::stdout(), format, &opts, progress)
                        .await?
                }
            };
            if g.json {
                output::json(
                    &serde_json::json!({ "snapshot": id, "format": format, "summary": summary }),
                );
            } else {
                eprintln!(
                    "exported snapshot {}: {} files, {} dirs, {} symlinks, {}",
                    id.short(),
                    summary.files,
                    summary.dirs,
                    summary.symlinks,
                    bytes(summary.bytes)
                );
            }
            Ok(())
        }
        RepoCommand::Stats => {
            let repo = open(&g).await?;
            let s = repo.stats().await?;
            if g.json {
                output::json(&s);
            } else {
                println!("snapshots:           {}", s.snapshots);
                println!(
                    "packs:               {} ({} marked for deletion)",
                    s.packs, s.packs_marked
                );
                println!("stored:              {}", bytes(s.stored_bytes));
                println!(
                    "unique content:      {} in {} chunks",
                    bytes(s.unique_bytes),
                    s.data_blobs
                );
                println!("trees:               {}", s.tree_blobs);
                println!("all snapshots hold:  {}", bytes(s.logical_bytes));
                println!("deduplication:       {:.2}x", s.dedup_ratio);
                println!("compression:         {:.2}x", s.compression_ratio);
                println!(
                    "index memory:        {} ({:.0} bytes per blob)",
                    bytes(s.index_memory_bytes),
                    s.index_bytes_per_blob
                );
            }
            Ok(())
        }
        RepoCommand::Key { command } => {
            let repo = open(&g).await?;
            match command {
                KeyCommand::Add { new_password_file } => {
                    let id = repo
                        .add_key(&new_password(&new_password_file)?, KdfParams::default())
                        .await?;
                    if g.json {
                        output::json(&serde_json::json!({ "added": id }));
                    } else {
                        println!("added key slot {}", id.short());
                    }
                }
                KeyCommand::List => {
                    let keys = repo.keys().await?;
                    if g.json {
                        output::json(&keys);
                    } else {
                        let mut rows = vec![
                            vec!["", "ID", "CREATED", "HOST", "USER"]
                                .into_iter()
                                .map(String::from)
                                .collect(),
                        ];
                        for k in keys {
                            rows.push(vec![
                                if k.current { "*".into() } else { String::new() },
                                k.id.short(),
                                local_time(&k.created),
                                k.host,
                                k.username,
                            ]);
                        }
                        output::table(&rows);
                    }
                }
                KeyCommand::Remove { id } => {
                    let removed = repo.remove_key(&id).await?;
                    if g.json {
                        output::json(&serde_json::json!({ "removed": removed }));
                    } else {
                        println!("removed key slot {}", removed.short());
                    }
                }
                KeyCommand::Passwd { new_password_file } => {
                    let id = repo
                        .change_password(&new_password(&new_password_file)?, KdfParams::default())
                        .await?;
                    if g.json {
                        output::json(&serde_json::json!({ "new_key": id }));
                    } else {
                        println!("password changed (new key slot {})", id.short());
                    }
                }
            }
            Ok(())
        }
        RepoCommand::RepairIndex => {
            let repo = open(&g).await?;
            let report = repo.repair_index(Progress::new()).await?;
            if g.json {
                output::json(&report);
            } else {
                println!(
                    "indexed {} packs, replaced {} index files",
                    report.packs_indexed, report.index_files_replaced
                );
                for bad in &report.packs_unreadable {
                    println!("unreadable: {bad}");
                }
            }
            Ok(())
        }
        RepoCommand::Unlock { all } => {
            let repo = open(&g).await?;
            let removed = chom_repo::remove_locks(repo.storage(), all, repo.stale_after()).await?;
            if g.json {
                output::json(&serde_json::json!({ "removed": removed }));
            } else {
                println!("removed {removed} locks");
            }
            Ok(())
        }
    }
}

fn parse_chunker(text: &str) -> Result<chom_repo::ChunkerParams, String> {
    let parts: Vec<u32> = text
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .map_err(|_| format!("{p:?} is not a number of KiB"))
        })
        .collect::<Result<_, _>>()?;
    let [min, avg, max] = parts[..] else {
        return Err("give three sizes in KiB: MIN,AVG,MAX".into());
    };
    let params = chom_repo::ChunkerParams {
        min_size: min * 1024,
        avg_size: avg * 1024,
        max_size: max * 1024,
    };
    params.validate().map_err(|e| e.to_string())?;
    Ok(params)
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}
