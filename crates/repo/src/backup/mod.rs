//! Backup: files and named streams into a new snapshot.
//!
//! Threads of one backup:
//!
//! ```text
//!  walker ──jobs──▶ workers (N) ──chunks──▶ rayon pool ──blobs──▶ packer ──packs──▶ uploader (async)
//!     │                  │ content ids                              ▲
//!     └──directories──▶ assembler ◀─┘  ──tree blobs─────────────────┘
//! ```
//!
//! Commit order: every pack is uploaded, then the index files naming them
//! are written, then the snapshot. The snapshot is the commit point; a backup
//! that dies earlier leaves only unreferenced packs (and index entries for
//! them), which a later backup may reuse and prune eventually removes.

mod assembler;
mod exclude;
mod walker;
mod worker;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use jiff::Timestamp;

pub use exclude::Excludes;

use crate::chunker::Chunker;
use crate::config::validate_compression_level;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::lock::{LockGuard, LockKind};
use crate::packer::{Packer, UploadReport};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::snapshot::{Snapshot, Summary};
use crate::tree::{FileName, Tree};
use walker::{PlannedSource, StreamDir, Walker};
use worker::{Ctx, Stats};

/// Something to back up.
pub struct Source(SourceKind);

enum SourceKind {
    Path {
        path: PathBuf,
        name: Option<String>,
    },
    Stream {
        name: String,
        reader: Box<dyn Read + Send>,
    },
}

impl Source {
    /// A file or directory, stored at the snapshot root under its own name.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Source(SourceKind::Path {
            path: path.into(),
            name: None,
        })
    }

    /// A file or directory, stored at the snapshot root under `name`
    /// (the Backup module stores a site's document root as `files`).
    pub fn path_as(path: impl Into<PathBuf>, name: &str) -> Self {
        Source(SourceKind::Path {
            path: path.into(),
            name: Some(name.to_string()),
        })
    }

    /// A stream (a database dump from a child process, standard input),
    /// stored as a file at the relative path `name` (`database/site.sql`).
    /// A read error from the stream fails the whole backup.
    pub fn stream(name: &str, reader: impl Read + Send + 'static) -> Self {
        Source(SourceKind::Stream {
            name: name.to_string(),
            reader: Box::new(reader),
        })
    }
}

/// Which snapshot a backup compares against to skip unchanged files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ParentSelection {
    /// The newest snapshot with the same paths and tags.
    #[default]
    Auto,
    /// None: read every file.
    None,
    /// This one.
    Snapshot(Id),
}

/// Options of a backup.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BackupOptions {
    /// `key=value` labels of the snapshot.
    pub tags: BTreeMap<String, String>,
    /// Exclude patterns (see [`Excludes`]).
    pub excludes: Vec<String>,
    /// Host recorded in the snapshot (default: this host).
    pub host: Option<String>,
    /// Parent snapshot.
    pub parent: ParentSelection,
    /// zstd level for new blobs (default: the repository's).
    pub compression_level: Option<i32>,
    /// Count the sources first so progress has totals.
    pub estimate_totals: bool,
    /// Snapshot time (default: now).
    pub time: Option<Timestamp>,
    /// File reader threads (default: the number of CPUs).
    pub workers: Option<usize>,
}

/// A finished backup.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The new snapshot's id.
    pub id: Id,
    /// The snapshot.
    pub snapshot: Snapshot,
}

fn validate_component(name: &str, what: &str) -> Result<FileName> {
    let file_name = FileName::from(name);
    file_name.validate_component().map_err(|_| {
        Error::InvalidInput(format!("{what} {name:?} is not a valid name in a snapshot"))
    })?;
    Ok(file_name)
}

struct Plan {
    paths: Vec<PlannedSource>,
    walk_paths: Vec<PathBuf>,
    streams: StreamDir,
    recorded_paths: Vec<String>,
}

fn plan(sources: Vec<Source>) -> Result<Plan> {
    if sources.is_empty() {
        return Err(Error::InvalidInput(
            "nothing to back up: give at least one path or stream".into(),
        ));
    }
    let mut names = HashSet::new();
    let mut plan = Plan {
        paths: Vec::new(),
        walk_paths: Vec::new(),
        streams: StreamDir::default(),
        recorded_paths: Vec::new(),
    };
    for source in sources {
        match source.0 {
            SourceKind::Path { path, name } => {
                let absolute =
                    std::path::absolute(&path).map_err(|e| Error::io("resolving", &path, e))?;
                let walk = std::fs::canonicalize(&absolute).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Error::InvalidInput(format!(
                        "source path {} does not exist",
                        absolute.display()
                    )),
                    _ => Error::io("resolving", &absolute, e),
                })?;
                let name = match name {
                    Some(n) => n,
                    None => absolute
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .ok_or_else(|| {
                            Error::InvalidInput(format!(
                                "cannot name source {}: back up a directory below it",
                                absolute.display()
                            ))
                        })?,
                };
                let file_name = validate_component(&name, "source name")?;
                if !names.insert(file_name.clone()) {
                    return Err(Error::InvalidInput(format!(
                        "two sources would both be stored as {name:?} at the snapshot root; back them up separately"
                    )));
                }
                plan.recorded_paths.push(absolute.display().to_string());
                plan.walk_paths.push(walk.clone());
                plan.paths.push(PlannedSource::Path {
                    path: walk,
                    name: file_name,
                });
            }
            SourceKind::Stream { name, reader } => {
                let parts: Vec<&str> = name.split('/').collect();
                let (file, dirs) = parts.split_last().expect("split yields one part");
                let mut components = Vec::new();
                for part in dirs.iter().chain(std::iter::once(file)) {
                    components.push(validate_component(part, "stream name part")?);
                }
                let mut dir = &mut plan.streams;
                for part in &components[..components.len() - 1] {
                    if dir.streams.contains_key(part) {
                        return Err(Error::InvalidInput(format!(
                            "stream name {name:?} collides with another stream"
                        )));
                    }
                    dir = dir.dirs.entry(part.clone()).or_default();
                }
                let leaf = components.last().expect("non-empty").clone();
                if dir.dirs.contains_key(&leaf) || dir.streams.insert(leaf, reader).is_some() {
                    return Err(Error::InvalidInput(format!(
                        "stream name {name:?} is given twice"
                    )));
                }
                plan.recorded_paths.push(format!("stdin:{name}"));
            }
        }
    }
    if let Some(name) = names
        .iter()
        .find(|n| plan.streams.dirs.contains_key(*n) || plan.streams.streams.contains_key(*n))
    {
        return Err(Error::InvalidInput(format!(
            "a stream and a path would both be stored as {name:?} at the snapshot root"
        )));
    }
    Ok(plan)
}

impl Repository {
    /// Back up `sources` into a new snapshot.
    pub async fn backup(
        &self,
        sources: Vec<Source>,
        opts: &BackupOptions,
        progress: Arc<Progress>,
    ) -> Result<BackupOutcome> {
        let level = opts
            .compression_level
            .unwrap_or(self.config().compression_level);
        validate_compression_level(level)?;
        let excludes = Excludes::new(&opts.excludes)?;
        let plan = plan(sources)?;
        let started = Instant::now();
        let time = opts.time.unwrap_or_else(Timestamp::now);

        let lock = LockGuard::acquire(
            self.storage(),
            LockKind::Backup,
            "backup",
            self.stale_after(),
        )
        .await?;
        let result = self
            .backup_locked(plan, opts, excludes, level, time, started, progress, &lock)
            .await;
        let released = lock.release().await;
        let outcome = result?;
        if let Err(e) = released {
            tracing::warn!("could not remove the backup lock (it will go stale): {e}");
        }
        Ok(outcome)
    }

    #[allow(clippy::too_many_arguments)]
    async fn backup_locked(
        &self,
        plan: Plan,
        opts: &BackupOptions,
        excludes: Excludes,
        level: i32,
        time: Timestamp,
        started: Instant,
        progress: Arc<Progress>,
        lock: &LockGuard,
    ) -> Result<BackupOutcome> {
        // A fresh index (after the lock exists): what others stored is reused,
        // and packs prune has marked are not.
        let index = self.refresh_index().await?;
        let mut recorded_paths = plan.recorded_paths.clone();
        recorded_paths.sort();
        let parent = self.choose_parent(opts, &recorded_paths).await?;
        let parent_root = match &parent {
            Some((_, snap)) => match self.read_tree(&snap.tree).await {
                Ok(tree) => Some(tree),
                Err(e) => {
                    tracing::warn!(
                        "cannot read the parent snapshot's root: {e}; reading every file"
                    );
                    None
                }
            },
            None => None,
        };

        let packer = Packer::start(self);
        let ctx = Arc::new(Ctx {
            crypto: self.crypto().clone(),
            index,
            chunker: Chunker::new(self.config().chunker, self.crypto().gear()),
            packer: packer.clone(),
            pending: Mutex::new(HashSet::new()),
            level,
            progress: progress.clone(),
            stats: Stats::default(),
            abort: AtomicBool::new(false),
            handle: tokio::runtime::Handle::current(),
        });
        let workers = opts
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1);
        let repo = self.clone();
        let estimate = opts.estimate_totals;
        let ctx2 = ctx.clone();
        let pipeline =
            tokio::task::spawn_blocking(move || -> Result<(assembler::Assembled, UploadReport)> {
                let input = PipelineInput {
                    plan,
                    excludes,
                    parent_root,
                    workers,
                    estimate_totals: estimate,
                    time,
                };
                let assembled = run_pipeline(&ctx2, &repo, input);
                match assembled {
                    Ok(assembled) => {
                        let report = ctx2.packer.finish_blocking(&ctx2.handle)?;
                        Ok((assembled, report))
                    }
                    Err(e) => {
                        ctx2.packer.abandon();
                        Err(e)
                    }
                }
            });
        let (assembled, report) = pipeline.await.expect("backup pipeline thread")?;
        // Pick up the index files this backup wrote (cheap: only new files are read).
        self.refresh_index().await?;

        let summary = Summary {
            files: assembled.files,
            dirs: assembled.dirs,
            files_new: ctx.stats.files_new.load(Ordering::Relaxed),
            files_changed: ctx.stats.files_changed.load(Ordering::Relaxed),
            files_unchanged: ctx.stats.files_unchanged.load(Ordering::Relaxed),
            total_bytes: assembled.total_bytes,
            bytes_read: ctx.stats.bytes_read.load(Ordering::Relaxed),
            bytes_added: ctx.stats.bytes_added.load(Ordering::Relaxed),
            bytes_stored: report.bytes_stored,
            duration_ms: started.elapsed().as_millis() as u64,
            skipped: assembled.skipped,
        };
        let snapshot = Snapshot {
            time,
            host: opts.host.clone().unwrap_or_else(crate::lock::hostname),
            username: crate::lock::username(),
            paths: recorded_paths,
            tags: opts.tags.clone(),
            tree: assembled.root,
            parent: parent.map(|(id, _)| id),
            summary,
            program: format!("chom-backup {}", env!("CARGO_PKG_VERSION")),
        };
        lock.ensure_fresh()?;
        let id = self.save_snapshot(&snapshot).await?;
        Ok(BackupOutcome { id, snapshot })
    }

    async fn choose_parent(
        &self,
        opts: &BackupOptions,
        paths: &[String],
    ) -> Result<Option<(Id, Snapshot)>> {
        match opts.parent {
            ParentSelection::None => Ok(None),
            ParentSelection::Snapshot(id) => Ok(Some((id, self.load_snapshot(&id).await?))),
            ParentSelection::Auto => Ok(self
                .snapshots()
                .await?
                .into_iter()
                .filter(|(_, s)| s.paths == paths && s.tags == opts.tags)
                .max_by_key(|(id, s)| (s.time, *id))),
        }
    }
}

/// What the pipeline threads work on, besides the shared context.
struct PipelineInput {
    plan: Plan,
    excludes: Excludes,
    parent_root: Option<Tree>,
    workers: usize,
    estimate_totals: bool,
    time: Timestamp,
}

fn run_pipeline(
    ctx: &Arc<Ctx>,
    repo: &Repository,
    input: PipelineInput,
) -> Result<assembler::Assembled> {
    let PipelineInput {
        plan,
        excludes,
        parent_root,
        workers,
        estimate_totals,
        time,
    } = input;
    let (job_tx, job_rx) = crossbeam_channel::bounded(workers * 16);
    let (dir_tx, dir_rx) = crossbeam_channel::unbounded();
    std::thread::scope(|scope| {
        if estimate_totals {
            let (paths, excludes, progress) = (
                plan.walk_paths.clone(),
                excludes.clone(),
                ctx.progress.clone(),
            );
            scope.spawn(move || walker::scan_totals(&paths, &excludes, &progress));
        }
        for _ in 0..workers {
            let job_rx = job_rx.clone();
            scope.spawn(move || worker::run_worker(ctx, &job_rx));
        }
        drop(job_rx);
        let assembler = scope.spawn(|| {
            let r = assembler::run_assembler(ctx, &dir_rx);
            if r.is_err() {
                ctx.abort.store(true, Ordering::SeqCst);
            }
            r
        });
        let walked = std::thread::Builder::new()
            .name("chom-walker".into())
            .stack_size(64 * 1024 * 1024)
            .spawn_scoped(scope, || {
                let walker = Walker {
                    ctx,
                    repo,
                    excludes: &excludes,
                    jobs: job_tx,
                    out: dir_tx,
                    stream_mtime_ns: time.as_nanosecond() as i64,
                };
                let r = walker.run(plan.paths, plan.streams, parent_root);
                if r.is_err() {
                    ctx.abort.store(true, Ordering::SeqCst);
                }
                r
            })
            .expect("spawn walker")
            .join()
            .expect("walker thread");
        let assembled = assembler.join().expect("assembler thread");
        // The walker's error is the cause; the assembler then only sees a
        // cancelled pipeline.
        match (walked, assembled) {
            (Err(e), _) if !matches!(e, Error::Cancelled) => Err(e),
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(a)) => Ok(a),
        }
    })
}
