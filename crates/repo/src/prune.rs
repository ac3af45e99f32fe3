//! Prune: free the space of data no snapshot needs, without stopping backups.
//!
//! Two phases (the protocol is specified in `docs/FORMAT.md`, "Prune"):
//!
//! 1. **Mark.** Packs holding no blob any snapshot needs, packs not in any
//!    index (left by interrupted backups, or belonging to a backup still
//!    running), and packs repacked because too much of them is unused are
//!    written to a new index file as *marked* with the current time. Backups
//!    never deduplicate against marked packs.
//! 2. **Delete.** A marked pack is deleted only when (a) the grace period
//!    since its mark has passed, (b) no snapshot, including ones written since
//!    the mark, needs a blob found only in it (otherwise it is revived), and
//!    (c) no live backup lock was taken before its mark (plus a clock-skew
//!    margin): such a backup may have loaded the index before the mark and
//!    use the pack's blobs in a snapshot it has not written yet.
//!
//! One prune at a time, under the maintenance lock; backups take shared
//! backup locks and are never blocked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::blob::{self, EncodedBlob};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{IndexFile, IndexedPack};
use crate::lock::{LockGuard, LockKind, list_locks};
use crate::pack::{self, FLAG_COMPRESSED, PackEntry};
use crate::packer::Packer;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::storage::ObjectKind;
use crate::tree::NodeKind;

/// Default grace period between marking a pack and deleting it.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(23 * 3600);

/// Clocks of machines sharing a repository may differ by at most this much.
pub const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Options of a prune.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Repack a pack when more than this percentage of it is unused.
    pub max_unused_percent: f64,
    /// Time between marking and deleting (0 for tests and emergencies).
    pub grace: Duration,
    /// Plan only; change nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused_percent: 5.0,
            grace: DEFAULT_GRACE,
            dry_run: false,
        }
    }
}

/// What a prune decided and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Whether nothing was changed (a dry run).
    pub dry_run: bool,
    /// Snapshots whose blobs were kept.
    pub snapshots: u64,
    /// Distinct blobs snapshots need.
    pub used_blobs: u64,
    /// Packs kept as they are.
    pub packs_kept: u64,
    /// Packs newly marked for deletion.
    pub packs_marked: u64,
    /// Packs whose used blobs were copied into new packs (then marked).
    pub packs_repacked: u64,
    /// New packs written by repacking.
    pub packs_written: u64,
    /// Marked packs taken back because a snapshot needs them.
    pub packs_revived: u64,
    /// Packs deleted.
    pub packs_deleted: u64,
    /// Marked packs kept for now (grace period or a running backup).
    pub packs_waiting: u64,
    /// Bytes of deleted packs.
    pub bytes_deleted: u64,
    /// Bytes copied by repacking.
    pub bytes_repacked: u64,
    /// Bytes in packs still marked, to be freed by a later prune.
    pub bytes_waiting: u64,
    /// Index files replaced.
    pub index_files_replaced: u64,
    /// Leftover temporary files removed.
    pub temporary_files_removed: u64,
}

#[derive(Debug, Clone)]
struct PackState {
    id: Id,
    size: u64,
    marked_at: Option<Timestamp>,
    blobs: Vec<PackEntry>,
    in_storage: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Repack,
    Mark,
    Revive,
    Waiting,
    Delete,
    Drop,
}

/// Prune deletes data; it will not decide what is unused while anything it
/// would base that on is damaged.
fn refuse_on_damage(e: Error) -> Error {
    match e {
        Error::Damaged { object, reason, .. } => Error::Damaged {
            object,
            reason: format!("{reason}; prune stops on damage: run `repo check`"),
            snapshots: Vec::new(),
        },
        other => other,
    }
}

/// Blob ids needed by `snapshots` (trees and data), reading each tree once.
async fn used_blobs(
    repo: &Repository,
    snapshots: &[(Id, Snapshot)],
    known_trees: &mut HashSet<Id>,
    used: &mut HashSet<Id>,
) -> Result<()> {
    for (_, snap) in snapshots {
        let mut stack = vec![snap.tree];
        while let Some(tree_id) = stack.pop() {
            if !known_trees.insert(tree_id) {
                continue;
            }
            used.insert(tree_id);
            let tree = repo.read_tree(&tree_id).await.map_err(refuse_on_damage)?;
            for node in tree.nodes {
                match node.kind {
                    NodeKind::Dir => stack.extend(node.subtree),
                    NodeKind::File => used.extend(node.content),
                    NodeKind::Symlink => {}
                }
            }
        }
    }
    Ok(())
}

impl Repository {
    /// Prune (see the module docs).
    pub async fn prune(&self, opts: &PruneOptions, progress: Arc<Progress>) -> Result<PruneReport> {
        if !(0.0..=100.0).contains(&opts.max_unused_percent) {
            return Err(Error::InvalidInput(format!(
                "--max-unused {} is out of range: use a percentage from 0 to 100",
                opts.max_unused_percent
            )));
        }
        let lock = LockGuard::acquire(
            self.storage(),
            LockKind::Maintenance,
            "prune",
            self.stale_after(),
        )
        .await?;
        let result = self.prune_locked(opts, &progress, &lock).await;
        let released = lock.release().await;
        let report = result?;
        released?;
        self.invalidate_index();
        Ok(report)
    }

    async fn prune_locked(
        &self,
        opts: &PruneOptions,
        progress: &Arc<Progress>,
        lock: &LockGuard,
    ) -> Result<PruneReport> {
        let mut report = PruneReport {
            dry_run: opts.dry_run,
            ..PruneReport::default()
        };
        let (files, damaged) = self.read_index_files().await?;
        if let Some(e) = damaged.into_iter().next() {
            return Err(e);
        }
        let (snapshots, damaged) = self.read_snapshots().await?;
        if let Some(e) = damaged.into_iter().next() {
            return Err(refuse_on_damage(e));
        }
        report.snapshots = snapshots.len() as u64;
        // The index the tree reads go through.
        self.refresh_index().await?;
        let mut known_trees = HashSet::new();
        let mut used = HashSet::new();
        used_blobs(self, &snapshots, &mut known_trees, &mut used).await?;
        report.used_blobs = used.len() as u64;

        let stored: HashMap<Id, u64> = self
            .storage()
            .list(ObjectKind::Pack)
            .await?
            .into_iter()
            .map(|o| (o.id, o.size))
            .collect();
        let mut packs = self.pack_states(&files, &stored).await?;
        let now = Timestamp::now();

        // Copies of used blobs in live packs that stay.
        let mut fates: Vec<Fate> = vec![Fate::Keep; packs.len()];
        let mut claimed: HashSet<Id> = HashSet::new();
        let mut repack_blobs: Vec<(usize, Vec<PackEntry>)> = Vec::new();
        for (i, p) in packs.iter().enumerate() {
            if p.marked_at.is_some() {
                continue;
            }
            let mut used_here = Vec::new();
            let mut used_bytes = 0u64;
            for b in &p.blobs {
                if used.contains(&b.id) && !claimed.contains(&b.id) {
                    used_here.push(*b);
                    used_bytes += u64::from(b.length);
                }
            }
            if !p.in_storage {
                if !used_here.is_empty() {
                    return Err(Error::damaged(
                        ObjectKind::Pack.describe(&p.id),
                        "missing from storage but holds needed blobs; prune stops: run `repo check`",
                    ));
                }
                fates[i] = Fate::Drop;
                continue;
            }
            let blob_bytes: u64 = p
                .blobs
                .iter()
                .map(|b| u64::from(b.length))
                .sum::<u64>()
                .max(1);
            let unused_percent =
                100.0 * (blob_bytes - used_bytes.min(blob_bytes)) as f64 / blob_bytes as f64;
            if used_here.is_empty() {
                fates[i] = Fate::Mark;
            } else if unused_percent > opts.max_unused_percent {
                fates[i] = Fate::Repack;
                claimed.extend(used_here.iter().map(|b| b.id));
                report.bytes_repacked += used_bytes;
                repack_blobs.push((i, used_here));
            } else {
                fates[i] = Fate::Keep;
                claimed.extend(used_here.iter().map(|b| b.id));
            }
        }
        // Used blobs found only in marked packs revive those packs.
        for (i, p) in packs.iter().enumerate() {
            if p.marked_at.is_some()
                && p.in_storage
                && p.blobs
                    .iter()
                    .any(|b| used.contains(&b.id) && !claimed.contains(&b.id))
            {
                fates[i] = Fate::Revive;
                claimed.extend(p.blobs.iter().map(|b| b.id));
            }
        }
        if let Some(missing) = used.iter().find(|id| !claimed.contains(*id)) {
            return Err(Error::damaged(
                format!("blob {}", missing.short()),
                "a snapshot needs it but no pack holds it; prune stops: run `repo check`",
            ));
        }

        for (p, fate) in packs.iter().zip(&fates) {
            match fate {
                Fate::Keep if p.marked_at.is_none() => report.packs_kept += 1,
                Fate::Mark => report.packs_marked += 1,
                Fate::Repack => report.packs_repacked += 1,
                Fate::Revive => report.packs_revived += 1,
                _ => {}
            }
        }
        if opts.dry_run {
            for (i, p) in packs.iter().enumerate() {
                if p.marked_at.is_some() && fates[i] == Fate::Keep {
                    report.packs_waiting += 1;
                    report.bytes_waiting += p.size;
                }
            }
            return Ok(report);
        }

        // ---- phase 1: repack, then write the marks ----
        let written = if repack_blobs.is_empty() {
            crate::packer::UploadReport::default()
        } else {
            self.repack(&packs, repack_blobs, progress).await?
        };
        report.packs_written = written.packs.len() as u64;
        for (i, p) in packs.iter_mut().enumerate() {
            match fates[i] {
                Fate::Mark | Fate::Repack => p.marked_at = Some(now),
                Fate::Revive => p.marked_at = None,
                _ => {}
            }
        }
        let mut superseded: Vec<Id> = files.iter().map(|(id, _)| *id).collect();
        superseded.extend(written.index_files.iter().copied());
        let extra = written.packs;
        let marks_index = self
            .write_state(&packs, &fates, &extra, &superseded)
            .await?;
        self.delete_index_files(&superseded).await?;
        report.index_files_replaced = superseded.len() as u64;

        // ---- phase 2: delete what is due ----
        let due: Vec<usize> = (0..packs.len())
            .filter(|&i| {
                let p = &packs[i];
                fates[i] != Fate::Drop
                    && p.marked_at.is_some_and(|m| {
                        now.duration_since(m).as_secs_f64() >= opts.grace.as_secs_f64()
                    })
            })
            .collect();
        if !due.is_empty() {
            // Snapshots written since we listed them may need marked blobs.
            let listed: HashSet<Id> = snapshots.iter().map(|(id, _)| *id).collect();
            let (all_now, damaged) = self.read_snapshots().await?;
            if let Some(e) = damaged.into_iter().next() {
                return Err(refuse_on_damage(e));
            }
            let newer: Vec<(Id, Snapshot)> = all_now
                .into_iter()
                .filter(|(id, _)| !listed.contains(id))
                .collect();
            let mut newly_used = HashSet::new();
            if !newer.is_empty() {
                self.refresh_index().await?;
                used_blobs(self, &newer, &mut known_trees, &mut newly_used).await?;
            }
            let live_after: HashSet<Id> = packs
                .iter()
                .filter(|p| p.marked_at.is_none() && p.in_storage)
                .flat_map(|p| p.blobs.iter().map(|b| b.id))
                .chain(extra.iter().flat_map(|p| p.blobs.iter().map(|b| b.id)))
                .collect();
            let running: Vec<Timestamp> = list_locks(self.storage())
                .await?
                .into_iter()
                .filter(|(_, l)| {
                    l.kind == LockKind::Backup && !l.is_stale(Timestamp::now(), self.stale_after())
                })
                .map(|(_, l)| l.created)
                .collect();
            for &i in &due {
                let p = &packs[i];
                let marked = p.marked_at.expect("due packs are marked");
                let needed = p
                    .blobs
                    .iter()
                    .any(|b| newly_used.contains(&b.id) && !live_after.contains(&b.id));
                let guard = marked
                    + jiff::SignedDuration::try_from(CLOCK_SKEW_MARGIN).expect("margin fits");
                let blocked = running.iter().any(|created| *created < guard);
                fates[i] = if needed {
                    report.packs_revived += 1;
                    Fate::Revive
                } else if blocked {
                    Fate::Waiting
                } else {
                    Fate::Delete
                };
            }
            for &i in &due {
                if fates[i] == Fate::Revive {
                    packs[i].marked_at = None;
                }
            }
            if due
                .iter()
                .any(|&i| matches!(fates[i], Fate::Delete | Fate::Revive))
            {
                lock.ensure_fresh()?;
                // The index without the deleted packs first: a crash before
                // the deletions leaves unindexed packs, which the next prune
                // marks again.
                self.write_state(&packs, &fates, &extra, &[marks_index])
                    .await?;
                self.delete_index_files(&[marks_index]).await?;
                for &i in &due {
                    if fates[i] == Fate::Delete {
                        self.storage()
                            .delete(&ObjectKind::Pack.path(&packs[i].id))
                            .await?;
                        report.packs_deleted += 1;
                        report.bytes_deleted += packs[i].size;
                    }
                }
            }
        }
        for (i, p) in packs.iter().enumerate() {
            if p.marked_at.is_some() && !matches!(fates[i], Fate::Delete | Fate::Drop) {
                report.packs_waiting += 1;
                report.bytes_waiting += p.size;
            }
        }
        report.temporary_files_removed = self
            .remove_old_temporary_files(opts.grace.max(Duration::from_secs(3600)))
            .await?;
        Ok(report)
    }

    /// Every pack known to an effective index file or present in storage.
    async fn pack_states(
        &self,
        files: &[(Id, IndexFile)],
        stored: &HashMap<Id, u64>,
    ) -> Result<Vec<PackState>> {
        let superseded: HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut by_id: HashMap<Id, usize> = HashMap::new();
        let mut packs: Vec<PackState> = Vec::new();
        for (_, file) in files.iter().filter(|(id, _)| !superseded.contains(id)) {
            for p in &file.packs {
                match by_id.get(&p.id) {
                    Some(&i) => {
                        let existing = &mut packs[i];
                        existing.marked_at = match (existing.marked_at, p.marked_at) {
                            (None, _) | (_, None) => None,
                            (Some(a), Some(b)) => Some(a.max(b)),
                        };
                    }
                    None => {
                        by_id.insert(p.id, packs.len());
                        packs.push(PackState {
                            id: p.id,
                            size: p.size,
                            marked_at: p.marked_at,
                            blobs: p.blobs.clone(),
                            in_storage: stored.contains_key(&p.id),
                        });
                    }
                }
            }
        }
        // Packs no index names: from interrupted backups, or from a backup
        // still running. Marked now, so the grace period protects the latter.
        let now = Timestamp::now();
        for (id, size) in stored {
            if by_id.contains_key(id) {
                continue;
            }
            let blobs = match self.read_pack_header(id, *size).await {
                Ok(blobs) => blobs,
                Err(e) => {
                    tracing::warn!(
                        "unindexed pack {} has no readable header ({e}); it will be deleted when due",
                        id.short()
                    );
                    Vec::new()
                }
            };
            by_id.insert(*id, packs.len());
            packs.push(PackState {
                id: *id,
                size: *size,
                marked_at: Some(now),
                blobs,
                in_storage: true,
            });
        }
        Ok(packs)
    }

    /// Read the header at the end of a pack without reading its blobs.
    pub(crate) async fn read_pack_header(&self, id: &Id, size: u64) -> Result<Vec<PackEntry>> {
        let path = ObjectKind::Pack.path(id);
        if size < 4 {
            return Err(Error::damaged(
                ObjectKind::Pack.describe(id),
                "shorter than its trailer",
            ));
        }
        let trailer = self.storage().read_range(&path, size - 4, 4).await?;
        let header_len = u64::from(pack::header_len_from_trailer(&trailer));
        if header_len + 4 > size {
            return Err(Error::damaged(
                ObjectKind::Pack.describe(id),
                "header length exceeds the pack",
            ));
        }
        let sealed = self
            .storage()
            .read_range(&path, size - 4 - header_len, header_len)
            .await?;
        pack::parse_header(self.crypto(), id, sealed, size)
    }

    /// Copy the used blobs of packs being repacked into new packs.
    async fn repack(
        &self,
        packs: &[PackState],
        work: Vec<(usize, Vec<PackEntry>)>,
        progress: &Arc<Progress>,
    ) -> Result<crate::packer::UploadReport> {
        progress.add_total(
            work.iter()
                .map(|(_, blobs)| blobs.iter().map(|b| u64::from(b.length)).sum::<u64>())
                .sum(),
            0,
        );
        progress.set_totals_known();
        let packer = Packer::start(self);
        let handle = tokio::runtime::Handle::current();
        let (repo, progress) = (self.clone(), progress.clone());
        let work: Vec<(Id, Vec<PackEntry>)> = work
            .into_iter()
            .map(|(i, blobs)| (packs[i].id, blobs))
            .collect();
        tokio::task::spawn_blocking(move || -> Result<crate::packer::UploadReport> {
            for (pack_id, blobs) in work {
                let path = ObjectKind::Pack.path(&pack_id);
                let copied = (|| -> Result<()> {
                    for b in blobs {
                        let stored = handle.block_on(repo.storage().read_range(
                            &path,
                            u64::from(b.offset),
                            u64::from(b.length),
                        ))?;
                        // Verify before copying: never spread damage.
                        blob::decode_with(
                            repo.crypto(),
                            b.kind,
                            &b.id,
                            &stored,
                            b.raw_length,
                            |_| (),
                        )?;
                        packer.add(&EncodedBlob {
                            id: b.id,
                            kind: b.kind,
                            raw_len: b.raw_length,
                            compressed: b.flags & FLAG_COMPRESSED != 0,
                            bytes: &stored,
                        })?;
                        progress.add(u64::from(b.length), 0);
                    }
                    Ok(())
                })();
                if let Err(e) = copied {
                    packer.abandon();
                    return Err(e);
                }
            }
            packer.finish_blocking(&handle)
        })
        .await
        .expect("repack task")
    }

    /// Write one index file describing the packs' new state.
    async fn write_state(
        &self,
        packs: &[PackState],
        fates: &[Fate],
        extra: &[IndexedPack],
        supersedes: &[Id],
    ) -> Result<Id> {
        let mut file = IndexFile {
            supersedes: supersedes.to_vec(),
            packs: Vec::with_capacity(packs.len() + extra.len()),
        };
        for (p, fate) in packs.iter().zip(fates) {
            if matches!(fate, Fate::Delete | Fate::Drop) {
                continue;
            }
            file.packs.push(IndexedPack {
                id: p.id,
                size: p.size,
                marked_at: p.marked_at,
                blobs: p.blobs.clone(),
            });
        }
        file.packs.extend(extra.iter().cloned());
        self.write_index(&file).await
    }

    async fn delete_index_files(&self, ids: &[Id]) -> Result<()> {
        for id in ids {
            self.storage().delete(&ObjectKind::Index.path(id)).await?;
        }
        Ok(())
    }

    async fn remove_old_temporary_files(&self, older_than: Duration) -> Result<u64> {
        let now = Timestamp::now();
        let mut removed = 0;
        for (path, modified) in self.storage().list_temporary().await? {
            if modified
                .is_some_and(|m| now.duration_since(m).as_secs_f64() > older_than.as_secs_f64())
            {
                self.storage().delete(&path).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
