//! Walking the sources: one thread visits every directory depth-first,
//! decides per file whether it must be read (new or changed against the
//! parent snapshot) and queues it for the workers, then hands each finished
//! directory listing to the assembler in post-order.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender};

use super::exclude::Excludes;
use super::worker::{Ctx, FileJob, FileOutcome, JobSource};
use crate::error::{Error, Result};
use crate::repository::Repository;
use crate::tree::{FileName, Node, NodeKind, Tree};

/// Whether a queued file is new or changed, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileStatus {
    New,
    Changed,
}

/// One entry of a directory as the walker leaves it for the assembler.
pub(crate) enum Slot {
    /// Complete (unchanged file, symlink).
    Ready(Node),
    /// Waiting for a worker to read its content.
    Pending {
        node: Node,
        status: FileStatus,
        reply: Receiver<Result<FileOutcome>>,
    },
    /// A subdirectory: the assembler has just finished it.
    Dir,
    /// Left out, with the reason.
    Skipped(String),
}

/// A directory whose entries are all visited.
pub(crate) struct DirMsg {
    /// The directory's own node (its `subtree` is filled by the assembler).
    pub node: Node,
    pub slots: Vec<Slot>,
}

/// Messages to the assembler, in post-order.
pub(crate) enum AssemblerMsg {
    Dir(DirMsg),
    Root(Vec<Slot>),
}

/// A top-level source of the snapshot.
pub(crate) enum PlannedSource {
    /// A path on disk, stored under `name` at the snapshot root.
    Path { path: PathBuf, name: FileName },
}

/// Named streams arranged as a directory tree.
#[derive(Default)]
pub(crate) struct StreamDir {
    pub dirs: BTreeMap<FileName, StreamDir>,
    pub streams: BTreeMap<FileName, Box<dyn std::io::Read + Send>>,
}

pub(crate) struct Walker<'a> {
    pub ctx: &'a Ctx,
    pub repo: &'a Repository,
    pub excludes: &'a Excludes,
    pub jobs: Sender<FileJob>,
    pub out: Sender<AssemblerMsg>,
    pub stream_mtime_ns: i64,
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// A node from `lstat` metadata.
pub(crate) fn node_from_metadata(name: FileName, meta: &Metadata, kind: NodeKind) -> Node {
    Node {
        name,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        size: if kind == NodeKind::File {
            meta.size()
        } else {
            0
        },
        target: None,
        content: Vec::new(),
        subtree: None,
    }
}

fn kind_of(meta: &Metadata) -> Option<NodeKind> {
    let ft = meta.file_type();
    if ft.is_file() {
        Some(NodeKind::File)
    } else if ft.is_dir() {
        Some(NodeKind::Dir)
    } else if ft.is_symlink() {
        Some(NodeKind::Symlink)
    } else {
        None
    }
}

impl Walker<'_> {
    /// Walk every source and stream, then send the root.
    pub fn run(
        &self,
        sources: Vec<PlannedSource>,
        streams: StreamDir,
        parent_root: Option<Tree>,
    ) -> Result<()> {
        let mut root = Vec::new();
        for source in sources {
            let PlannedSource::Path { path, name } = source;
            let meta = std::fs::symlink_metadata(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    Error::InvalidInput(format!("source path {} does not exist", path.display()))
                }
                _ => Error::io("reading", &path, e),
            })?;
            let parent = parent_root.as_ref().and_then(|t| t.find(&name.0)).cloned();
            root.push(self.visit(&path, Path::new(""), name, &meta, parent.as_ref())?);
        }
        self.emit_streams(streams, &mut root)?;
        self.out
            .send(AssemblerMsg::Root(root))
            .map_err(|_| Error::Cancelled)
    }

    fn emit_streams(&self, dir: StreamDir, slots: &mut Vec<Slot>) -> Result<()> {
        for (name, sub) in dir.dirs {
            let mut sub_slots = Vec::new();
            self.emit_streams(sub, &mut sub_slots)?;
            let node = Node::synthetic(name, NodeKind::Dir, 0o755, self.stream_mtime_ns);
            self.out
                .send(AssemblerMsg::Dir(DirMsg {
                    node,
                    slots: sub_slots,
                }))
                .map_err(|_| Error::Cancelled)?;
            slots.push(Slot::Dir);
        }
        for (name, reader) in dir.streams {
            // Streams are database dumps: readable by their owner only.
            let node = Node::synthetic(name, NodeKind::File, 0o600, self.stream_mtime_ns);
            slots.push(self.queue(node, FileStatus::New, JobSource::Stream(reader))?);
        }
        Ok(())
    }

    fn queue(&self, node: Node, status: FileStatus, source: JobSource) -> Result<Slot> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.jobs
            .send(FileJob {
                source,
                reply: reply_tx,
            })
            .map_err(|_| Error::Cancelled)?;
        Ok(Slot::Pending {
            node,
            status,
            reply: reply_rx,
        })
    }

    /// Visit one entry (already lstat'ed) and return its slot.
    fn visit(
        &self,
        path: &Path,
        relative: &Path,
        name: FileName,
        meta: &Metadata,
        parent: Option<&Node>,
    ) -> Result<Slot> {
        if self.ctx.aborted() {
            return Err(Error::Cancelled);
        }
        let Some(kind) = kind_of(meta) else {
            return Ok(Slot::Skipped(format!(
                "{}: not a regular file, directory or symlink",
                path.display()
            )));
        };
        let mut node = node_from_metadata(name, meta, kind);
        match kind {
            NodeKind::Symlink => match std::fs::read_link(path) {
                Ok(target) => {
                    node.target = Some(FileName::from_os(target.as_os_str()));
                    Ok(Slot::Ready(node))
                }
                Err(e) => Ok(Slot::Skipped(format!("{}: {e}", path.display()))),
            },
            NodeKind::File => self.file(path, node, parent),
            NodeKind::Dir => {
                let parent_tree = parent
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree)
                    .and_then(|id| match self.ctx.handle.block_on(self.repo.read_tree(&id)) {
                        Ok(tree) => Some(tree),
                        Err(e) => {
                            tracing::warn!("cannot read the parent snapshot's listing of {}: {e}; reading all its files", path.display());
                            None
                        }
                    });
                match self.dir(path, relative, parent_tree.as_ref()) {
                    Ok(slots) => {
                        self.out
                            .send(AssemblerMsg::Dir(DirMsg { node, slots }))
                            .map_err(|_| Error::Cancelled)?;
                        Ok(Slot::Dir)
                    }
                    Err(Error::Io { source, .. }) => {
                        Ok(Slot::Skipped(format!("{}: {source}", path.display())))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn file(&self, path: &Path, mut node: Node, parent: Option<&Node>) -> Result<Slot> {
        let status = match parent {
            Some(p)
                if p.kind == NodeKind::File
                    && p.size == node.size
                    && p.mtime_ns == node.mtime_ns
                    && p.ctime_ns == node.ctime_ns
                    && p.inode == node.inode
                    && p.content
                        .iter()
                        .all(|id| self.ctx.index.get_live(id).is_some()) =>
            {
                node.content = p.content.clone();
                self.ctx
                    .stats
                    .files_unchanged
                    .fetch_add(1, Ordering::Relaxed);
                self.ctx.progress.add(node.size, 1);
                return Ok(Slot::Ready(node));
            }
            Some(_) => FileStatus::Changed,
            None => FileStatus::New,
        };
        self.queue(node, status, JobSource::File(path.to_path_buf()))
    }

    fn dir(&self, path: &Path, relative: &Path, parent_tree: Option<&Tree>) -> Result<Vec<Slot>> {
        let mut entries: Vec<(FileName, PathBuf)> = std::fs::read_dir(path)
            .map_err(|e| Error::io("listing", path, e))?
            .filter_map(|entry| entry.ok())
            .map(|entry| (FileName::from_os(&entry.file_name()), entry.path()))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut slots = Vec::with_capacity(entries.len());
        for (name, child) in entries {
            let child_relative = relative.join(name.as_os());
            if self.excludes.is_excluded(&child_relative) {
                continue;
            }
            let meta = match std::fs::symlink_metadata(&child) {
                Ok(meta) => meta,
                // Vanished since the listing (a rotated cache file): not an error.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    slots.push(Slot::Skipped(format!("{}: {e}", child.display())));
                    continue;
                }
            };
            let parent = parent_tree.and_then(|t| t.find(&name.0));
            slots.push(self.visit(&child, &child_relative, name, &meta, parent)?);
        }
        Ok(slots)
    }
}

/// Count what the sources hold, for a progress total (runs beside the walk).
pub(crate) fn scan_totals(
    paths: &[PathBuf],
    excludes: &Excludes,
    progress: &Arc<crate::progress::Progress>,
) {
    fn scan(
        path: &Path,
        relative: &Path,
        excludes: &Excludes,
        progress: &crate::progress::Progress,
    ) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if meta.is_dir() {
            let Ok(read) = std::fs::read_dir(path) else {
                return;
            };
            for entry in read.flatten() {
                let rel = relative.join(entry.file_name());
                if !excludes.is_excluded(&rel) {
                    scan(&entry.path(), &rel, excludes, progress);
                }
            }
        } else if meta.is_file() {
            progress.add_total(meta.len(), 1);
        }
    }
    for path in paths {
        scan(path, Path::new(""), excludes, progress);
    }
    progress.set_totals_known();
}
