//! Restore: a snapshot (or parts of it) into a directory.
//!
//! Plan, then execute. The plan lists directories, files and symlinks and,
//! for every pack holding needed blobs, which blobs go to which file offsets.
//! Execution creates the directories, then reads each pack once, in pack
//! order, several packs at a time, verifying every blob as it is decoded and
//! writing it wherever it is needed; metadata (modes, owners, times) comes
//! last, directories deepest first.
//!
//! Safety: every name is checked to be a single path component before
//! anything is written; directories are created one level at a time, an
//! existing symlink in the way is removed rather than followed, and files
//! are opened with `O_NOFOLLOW`. Nothing is ever written outside the target.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use crate::blob::{self, BlobKind};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::IndexEntry;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::storage::ObjectKind;
use crate::tree::{Node, NodeKind};
use crate::walk::{self, Trees};

/// Options of a restore.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Restore only these paths (relative to the snapshot root) and what is
    /// below them; empty = everything.
    pub includes: Vec<String>,
    /// Packs read at once (default: twice the CPUs, at least 4).
    pub concurrency: Option<usize>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// One place a blob goes.
#[derive(Debug, Clone, Copy)]
struct Target {
    file: u32,
    offset: u64,
}

struct BlobPlan {
    entry: IndexEntry,
    targets: Vec<Target>,
}

struct FilePlan {
    path: PathBuf,
    node: Node,
    remaining: AtomicU64,
}

struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<FilePlan>,
    symlinks: Vec<(PathBuf, Node)>,
    /// Pack position → blobs, in pack order.
    packs: BTreeMap<Id, Vec<BlobPlan>>,
    bytes: u64,
}

/// Whether `path` is inside an include, or a directory leading to one.
fn relevant(path: &Path, includes: &[PathBuf]) -> bool {
    includes.is_empty()
        || includes
            .iter()
            .any(|inc| path.starts_with(inc) || inc.starts_with(path))
}

async fn make_plan(repo: &Repository, trees: &Trees, includes: &[PathBuf]) -> Result<Plan> {
    for inc in includes {
        if trees.lookup(inc).is_none() {
            return Err(Error::PathNotFound(inc.display().to_string()));
        }
    }
    let mut plan = Plan {
        dirs: Vec::new(),
        files: Vec::new(),
        symlinks: Vec::new(),
        packs: BTreeMap::new(),
        bytes: 0,
    };
    trees.walk(|path, node| {
        if !relevant(path, includes) {
            return Ok(false);
        }
        match node.kind {
            NodeKind::Dir => plan.dirs.push((path.to_path_buf(), node.clone())),
            NodeKind::Symlink => plan.symlinks.push((path.to_path_buf(), node.clone())),
            NodeKind::File => {
                // Only files wholly inside an include (not mere ancestors).
                if includes.is_empty() || includes.iter().any(|inc| path.starts_with(inc)) {
                    plan.files.push(FilePlan {
                        path: path.to_path_buf(),
                        node: node.clone(),
                        remaining: AtomicU64::new(node.content.len() as u64),
                    });
                }
            }
        }
        Ok(true)
    })?;
    let index = repo.refresh_index().await?;
    let mut by_blob: HashMap<Id, (Id, BlobPlan)> = HashMap::new();
    for (i, file) in plan.files.iter().enumerate() {
        let mut offset = 0u64;
        for id in &file.node.content {
            let entry = *index.get(id).ok_or_else(|| {
                Error::damaged(
                    format!("data blob {}", id.short()),
                    format!(
                        "needed by {} but not in the index (run `repo check`)",
                        file.path.display()
                    ),
                )
            })?;
            let target = Target {
                file: i as u32,
                offset,
            };
            offset += u64::from(entry.raw_length);
            by_blob
                .entry(*id)
                .or_insert_with(|| {
                    (
                        index.pack(&entry).id,
                        BlobPlan {
                            entry,
                            targets: Vec::new(),
                        },
                    )
                })
                .1
                .targets
                .push(target);
        }
        plan.bytes += offset;
    }
    for (_, (pack, blob)) in by_blob {
        plan.packs.entry(pack).or_default().push(blob);
    }
    for blobs in plan.packs.values_mut() {
        blobs.sort_by_key(|b| b.entry.offset);
    }
    Ok(plan)
}

/// Create `path` as a directory, replacing a symlink or file in the way.
/// Its parent is already a real directory we made or checked.
fn ensure_dir(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io("replacing", path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("inspecting", path, e)),
    }
    std::fs::create_dir(path).map_err(|e| Error::io("creating directory", path, e))
}

/// Remove whatever is at `path` unless it is a regular file.
fn clear_for_file(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) if meta.is_dir() => {
            std::fs::remove_dir_all(path).map_err(|e| Error::io("replacing", path, e))
        }
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io("replacing", path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("inspecting", path, e)),
    }
}

fn open_for_write(path: &Path, create: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(create)
        .truncate(create)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidInput(format!("path {} contains a NUL byte", path.display())))
}

/// Set owner (when allowed) and times without following symlinks, and the
/// mode for anything but symlinks.
pub(crate) fn apply_metadata(path: &Path, node: &Node, chown: bool) -> Result<()> {
    let c = c_path(path)?;
    if chown {
        // SAFETY: valid NUL-terminated path; lchown does not follow links.
        if unsafe { libc::lchown(c.as_ptr(), node.uid, node.gid) } != 0 {
            return Err(Error::io(
                "changing the owner of",
                path,
                std::io::Error::last_os_error(),
            ));
        }
    }
    if node.kind != NodeKind::Symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777))
            .map_err(|e| Error::io("setting permissions of", path, e))?;
    }
    let ts = libc::timespec {
        tv_sec: node.mtime_ns.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: node.mtime_ns.rem_euclid(1_000_000_000) as libc::c_long,
    };
    let times = [ts, ts];
    // SAFETY: valid path and a two-element timespec array as utimensat wants.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(Error::io(
            "setting times of",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Whether this process may restore owners.
pub(crate) fn can_chown() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Repository {
    /// Restore snapshot `snapshot` into `target` (created if missing).
    pub async fn restore(
        &self,
        snapshot: &Id,
        target: &Path,
        opts: &RestoreOptions,
        progress: Arc<Progress>,
    ) -> Result<RestoreSummary> {
        let started = Instant::now();
        let snap = self.load_snapshot(snapshot).await?;
        let includes = opts
            .includes
            .iter()
            .map(|p| walk::normalize_snapshot_path(p))
            .collect::<Result<Vec<_>>>()?;
        let trees = walk::load_trees(self, snap.tree, true).await?;
        let plan = Arc::new(make_plan(self, &trees, &includes).await?);
        progress.add_total(plan.bytes, plan.files.len() as u64);
        progress.set_totals_known();

        std::fs::create_dir_all(target).map_err(|e| Error::io("creating", target, e))?;
        let target =
            std::fs::canonicalize(target).map_err(|e| Error::io("resolving", target, e))?;
        {
            let (plan, target) = (plan.clone(), target.clone());
            let progress = progress.clone();
            tokio::task::spawn_blocking(move || create_structure(&plan, &target, &progress))
                .await
                .expect("restore structure task")?;
        }

        let concurrency = opts.concurrency.unwrap_or_else(|| {
            (2 * std::thread::available_parallelism().map_or(2, |n| n.get())).max(4)
        });
        let written = Arc::new(AtomicU64::new(0));
        let results: Vec<Result<()>> =
            futures::stream::iter(plan.packs.keys().copied().collect::<Vec<_>>())
                .map(|pack| {
                    let (plan, target, progress, written) = (
                        plan.clone(),
                        target.clone(),
                        progress.clone(),
                        written.clone(),
                    );
                    async move {
                        self.restore_pack(pack, &plan, &target, &progress, &written)
                            .await
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        results.into_iter().collect::<Result<()>>()?;

        let chown = can_chown();
        let summary_plan = plan.clone();
        tokio::task::spawn_blocking(move || finish_metadata(&plan, &target, chown))
            .await
            .expect("restore metadata task")?;
        Ok(RestoreSummary {
            files: summary_plan.files.len() as u64,
            dirs: summary_plan.dirs.len() as u64,
            symlinks: summary_plan.symlinks.len() as u64,
            bytes: written.load(Ordering::Relaxed),
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    async fn restore_pack(
        &self,
        pack: Id,
        plan: &Arc<Plan>,
        target: &Path,
        progress: &Arc<Progress>,
        written: &Arc<AtomicU64>,
    ) -> Result<()> {
        let blobs = &plan.packs[&pack];
        let path = ObjectKind::Pack.path(&pack);
        let runs = crate::pack::read_runs(blobs, |b| (b.entry.offset, b.entry.length));
        for (start, end) in runs {
            let first = blobs[start].entry.offset;
            let last = &blobs[end - 1].entry;
            let pieces = self
                .storage()
                .read_range_pieces(
                    &path,
                    u64::from(first),
                    u64::from(last.offset + last.length - first),
                )
                .await
                .map_err(|e| match e {
                    Error::MissingObject { .. } => {
                        Error::damaged(ObjectKind::Pack.describe(&pack), "missing from storage")
                    }
                    other => other,
                })?;
            let (crypto, plan, target, progress, written) = (
                self.crypto().clone(),
                plan.clone(),
                target.to_path_buf(),
                progress.clone(),
                written.clone(),
            );
            crate::cpu::run(move || -> Result<()> {
                let blobs = &plan.packs[&pack];
                for blob_plan in &blobs[start..end] {
                    let e = &blob_plan.entry;
                    let at = (e.offset - first) as usize;
                    let stored = pieces.slice(at..at + e.length as usize).to_bytes();
                    blob::decode_with(
                        &crypto,
                        BlobKind::Data,
                        &e.id,
                        &stored,
                        e.raw_length,
                        |data| {
                            write_targets(
                                &plan,
                                &target,
                                &blob_plan.targets,
                                data,
                                &progress,
                                &written,
                            )
                        },
                    )??;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

/// Write one decoded blob wherever the plan puts it.
fn write_targets(
    plan: &Plan,
    target: &Path,
    targets: &[Target],
    data: &[u8],
    progress: &Progress,
    written: &AtomicU64,
) -> Result<()> {
    for t in targets {
        let file = &plan.files[t.file as usize];
        let path = target.join(&file.path);
        let f = open_for_write(&path, false).map_err(|err| Error::io("opening", &path, err))?;
        f.write_all_at(data, t.offset)
            .map_err(|err| Error::io("writing", &path, err))?;
        written.fetch_add(data.len() as u64, Ordering::Relaxed);
        progress.add(data.len() as u64, 0);
        if file.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            progress.add(0, 1);
        }
    }
    Ok(())
}

fn create_structure(plan: &Plan, target: &Path, progress: &Progress) -> Result<()> {
    for (path, _) in &plan.dirs {
        ensure_dir(&target.join(path))?;
    }
    for file in &plan.files {
        let path = target.join(&file.path);
        clear_for_file(&path)?;
        let f = open_for_write(&path, true).map_err(|e| Error::io("creating", &path, e))?;
        if file.node.size > 0 {
            f.set_len(file.node.size)
                .map_err(|e| Error::io("sizing", &path, e))?;
        } else {
            progress.add(0, 1);
        }
    }
    Ok(())
}

fn finish_metadata(plan: &Plan, target: &Path, chown: bool) -> Result<()> {
    for (path, node) in &plan.symlinks {
        let full = target.join(path);
        clear_for_file(&full)?;
        let link_target = node
            .target
            .as_ref()
            .expect("validated symlink has a target");
        std::os::unix::fs::symlink(link_target.as_os(), &full)
            .map_err(|e| Error::io("creating symlink", &full, e))?;
        apply_metadata(&full, node, chown)?;
    }
    for file in &plan.files {
        apply_metadata(&target.join(&file.path), &file.node, chown)?;
    }
    for (path, node) in plan.dirs.iter().rev() {
        apply_metadata(&target.join(path), node, chown)?;
    }
    Ok(())
}
