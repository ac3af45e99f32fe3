//! Check: is every snapshot complete and every object intact?
//!
//! Structure (always): every index file and snapshot opens; every tree of
//! every snapshot is readable; every blob a snapshot needs is in the index;
//! every pack the index names exists with the listed size. With
//! `--read-data` (or a subset of packs): every byte of each pack is read, its
//! hash compared with its name, its header compared with the index, and every
//! blob decrypted, decompressed and hashed again.
//!
//! Problems are collected, not fatal: the report names each damaged object
//! and the snapshots it affects.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use rayon::prelude::*;
use serde::Serialize;

use crate::blob::{self, BlobKind};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::MasterIndex;
use crate::pack;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::storage::ObjectKind;
use crate::tree::{NodeKind, Tree};

/// A pack's blobs as (id, kind, offset, length, raw length), to compare the
/// index with a pack's own header.
type BlobListing = Vec<(Id, BlobKind, u32, u32, u32)>;

/// How much pack data to read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum ReadData {
    /// Structure only.
    #[default]
    None,
    /// Every pack.
    All,
    /// A random share of the packs, in percent (0 < p <= 100).
    Subset(f64),
}

/// Options of a check.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CheckOptions {
    /// Pack data to read.
    pub read_data: ReadData,
}

/// One problem found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckProblem {
    /// The damaged or missing object (`pack 3fa1c2d4`, `snapshot 12ab34cd`).
    pub object: String,
    /// What is wrong.
    pub reason: String,
    /// Snapshots that cannot be restored completely because of it.
    pub snapshots: Vec<Id>,
}

/// The result of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Snapshots examined.
    pub snapshots: u64,
    /// Distinct trees read.
    pub trees: u64,
    /// Packs named by the index.
    pub packs: u64,
    /// Packs whose data was read.
    pub packs_read: u64,
    /// Bytes of pack data read.
    pub bytes_read: u64,
    /// Things that are wrong.
    pub problems: Vec<CheckProblem>,
    /// Things worth knowing that are not damage.
    pub notes: Vec<String>,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem_from(e: &Error, snapshots: Vec<Id>) -> CheckProblem {
    match e {
        Error::Damaged { object, reason, .. } => CheckProblem {
            object: object.clone(),
            reason: reason.clone(),
            snapshots,
        },
        Error::MissingObject { path } => CheckProblem {
            object: path.clone(),
            reason: "missing".into(),
            snapshots,
        },
        other => CheckProblem {
            object: "repository".into(),
            reason: other.to_string(),
            snapshots,
        },
    }
}

impl Repository {
    /// Check the repository (see the module docs).
    pub async fn check(&self, opts: &CheckOptions, progress: Arc<Progress>) -> Result<CheckReport> {
        let mut report = CheckReport::default();

        let (files, damaged_index) = self.read_index_files().await?;
        for e in &damaged_index {
            report.problems.push(problem_from(e, Vec::new()));
        }
        let index = MasterIndex::build(&files);
        let stored: HashMap<Id, u64> = self
            .storage()
            .list(ObjectKind::Pack)
            .await?
            .into_iter()
            .map(|o| (o.id, o.size))
            .collect();
        report.packs = index.packs().len() as u64;

        let (snapshots, damaged_snapshots) = self.read_snapshots().await?;
        for e in &damaged_snapshots {
            report.problems.push(problem_from(e, Vec::new()));
        }
        report.snapshots = snapshots.len() as u64;

        // Which snapshots use which pack, and what each snapshot lacks.
        let mut users: HashMap<u32, BTreeSet<Id>> = HashMap::new();
        let mut trees: HashMap<Id, Option<Tree>> = HashMap::new();
        for (snap_id, snap) in &snapshots {
            let mut stack = vec![snap.tree];
            let mut seen = HashSet::new();
            while let Some(tree_id) = stack.pop() {
                if !seen.insert(tree_id) {
                    continue;
                }
                match index.get(&tree_id) {
                    Some(e) => {
                        users.entry(e.pack).or_default().insert(*snap_id);
                    }
                    None => {
                        report.problems.push(CheckProblem {
                            object: format!("tree blob {}", tree_id.short()),
                            reason: "not in the index".into(),
                            snapshots: vec![*snap_id],
                        });
                        continue;
                    }
                }
                if let std::collections::hash_map::Entry::Vacant(slot) = trees.entry(tree_id) {
                    let loaded = match self.read_tree(&tree_id).await {
                        Ok(t) => Some(t),
                        Err(e) => {
                            report.problems.push(problem_from(&e, vec![*snap_id]));
                            None
                        }
                    };
                    slot.insert(loaded);
                }
                let Some(Some(tree)) = trees.get(&tree_id) else {
                    continue;
                };
                for node in &tree.nodes {
                    match node.kind {
                        NodeKind::Dir => stack.extend(node.subtree),
                        NodeKind::File => {
                            for id in &node.content {
                                match index.get(id) {
                                    Some(e) => {
                                        users.entry(e.pack).or_default().insert(*snap_id);
                                    }
                                    None => report.problems.push(CheckProblem {
                                        object: format!("data blob {}", id.short()),
                                        reason: format!(
                                            "not in the index (needed by {})",
                                            node.name.lossy()
                                        ),
                                        snapshots: vec![*snap_id],
                                    }),
                                }
                            }
                        }
                        NodeKind::Symlink => {}
                    }
                }
            }
        }
        report.trees = trees.len() as u64;
        let affected = |pack_pos: u32| {
            users
                .get(&pack_pos)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default()
        };

        let mut to_read = Vec::new();
        for (pos, pack) in index.packs().iter().enumerate() {
            let pos = pos as u32;
            match stored.get(&pack.id) {
                None if pack.marked_at.is_some() && !users.contains_key(&pos) => {
                    report.notes.push(format!(
                        "pack {} (marked for deletion) is already gone",
                        pack.id.short()
                    ));
                }
                None => report.problems.push(CheckProblem {
                    object: ObjectKind::Pack.describe(&pack.id),
                    reason: "missing from storage".into(),
                    snapshots: affected(pos),
                }),
                Some(size) if *size != pack.size => report.problems.push(CheckProblem {
                    object: ObjectKind::Pack.describe(&pack.id),
                    reason: format!("size is {size} bytes, the index says {}", pack.size),
                    snapshots: affected(pos),
                }),
                Some(_) => to_read.push(pos),
            }
        }
        let indexed: HashSet<Id> = index.packs().iter().map(|p| p.id).collect();
        let unindexed = stored.keys().filter(|id| !indexed.contains(id)).count();
        if unindexed > 0 {
            report.notes.push(format!(
                "{unindexed} packs are not in the index (left by interrupted backups or a running one); prune removes them when unused"
            ));
        }

        let selected: Vec<u32> = match opts.read_data {
            ReadData::None => Vec::new(),
            ReadData::All => to_read,
            ReadData::Subset(percent) => {
                if !(percent > 0.0 && percent <= 100.0) {
                    return Err(Error::InvalidInput(format!(
                        "subset {percent}% is out of range: use more than 0 and at most 100"
                    )));
                }
                let want = ((to_read.len() as f64) * percent / 100.0).ceil() as usize;
                let mut keyed: Vec<(u64, u32)> = to_read
                    .into_iter()
                    .map(|pos| {
                        let mut r = [0u8; 8];
                        crate::crypto::fill_random(&mut r);
                        (u64::from_le_bytes(r), pos)
                    })
                    .collect();
                keyed.sort_unstable();
                keyed.into_iter().take(want).map(|(_, pos)| pos).collect()
            }
        };
        if !selected.is_empty() {
            let index = Arc::new(index);
            progress.add_total(
                selected
                    .iter()
                    .map(|p| index.packs()[*p as usize].size)
                    .sum(),
                0,
            );
            progress.set_totals_known();
            let mut expected: HashMap<Id, BlobListing> = HashMap::new();
            for (_, file) in &files {
                for p in &file.packs {
                    expected.entry(p.id).or_insert_with(|| {
                        p.blobs
                            .iter()
                            .map(|b| (b.id, b.kind, b.offset, b.length, b.raw_length))
                            .collect()
                    });
                }
            }
            let expected = Arc::new(expected);
            let concurrency = std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2);
            let results: Vec<(u32, u64, Result<()>)> = futures::stream::iter(selected)
                .map(|pos| {
                    let (index, expected, progress) =
                        (index.clone(), expected.clone(), progress.clone());
                    async move {
                        let pack = index.packs()[pos as usize].id;
                        let (bytes, r) = self.verify_pack(&pack, &expected).await;
                        progress.add(bytes, 0);
                        (pos, bytes, r)
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            for (pos, bytes, r) in results {
                report.packs_read += 1;
                report.bytes_read += bytes;
                if let Err(e) = r {
                    report.problems.push(problem_from(&e, affected(pos)));
                }
            }
        }
        report.problems.sort_by(|a, b| a.object.cmp(&b.object));
        Ok(report)
    }

    /// Read one pack and verify everything in it; returns bytes read.
    async fn verify_pack(
        &self,
        pack: &Id,
        expected: &HashMap<Id, BlobListing>,
    ) -> (u64, Result<()>) {
        let pieces = match self
            .storage()
            .read_pieces(&ObjectKind::Pack.path(pack))
            .await
        {
            Ok(b) => b,
            Err(e) => return (0, Err(e)),
        };
        let len = pieces.len() as u64;
        let crypto = self.crypto().clone();
        let pack = *pack;
        let listed = expected.get(&pack).cloned().unwrap_or_default();
        let r = crate::cpu::run(move || -> Result<()> {
            let what = ObjectKind::Pack.describe(&pack);
            let mut hasher = blake3::Hasher::new();
            for piece in pieces.clone() {
                hasher.update(&piece);
            }
            if Id::new(*hasher.finalize().as_bytes()) != pack {
                return Err(Error::damaged(
                    what,
                    "content does not match its name (hash)",
                ));
            }
            let header = pack::header_of(&crypto, &pack, &pieces)?;
            let in_header: Vec<(Id, BlobKind, u32, u32, u32)> = header
                .iter()
                .map(|b| (b.id, b.kind, b.offset, b.length, b.raw_length))
                .collect();
            if !listed.is_empty() && listed != in_header {
                return Err(Error::damaged(what, "header does not match the index"));
            }
            header.par_iter().try_for_each(|b| {
                let stored = pieces
                    .slice(b.offset as usize..(b.offset + b.length) as usize)
                    .to_bytes();
                blob::decode_with(&crypto, b.kind, &b.id, &stored, b.raw_length, |_| ())
            })
        })
        .await;
        (len, r)
    }
}

/// What a deep verification of one snapshot read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SnapshotVerification {
    /// Distinct blobs (trees and chunks) read and verified.
    pub blobs: u64,
    /// Their plaintext bytes.
    pub bytes: u64,
}

impl Repository {
    /// Read and verify every blob of one snapshot (not the whole
    /// repository): each pack holding its data is read once, and every chunk
    /// decrypted, decompressed and hashed again. Fails on the first damage.
    pub async fn verify_snapshot(
        &self,
        snapshot: &Id,
        progress: Arc<Progress>,
    ) -> Result<SnapshotVerification> {
        let snap = self.load_snapshot(snapshot).await?;
        // Reading the trees verifies them.
        let trees = crate::walk::load_trees(self, snap.tree, false).await?;
        let index = self.refresh_index().await?;
        let mut wanted: HashMap<Id, Vec<crate::index::IndexEntry>> = HashMap::new();
        let mut seen = HashSet::new();
        for tree in trees.trees.values() {
            for node in tree.nodes.iter().filter(|n| n.kind == NodeKind::File) {
                for id in &node.content {
                    if !seen.insert(*id) {
                        continue;
                    }
                    let entry = *index.get(id).ok_or_else(|| {
                        Error::damaged(format!("data blob {}", id.short()), "not in the index")
                    })?;
                    wanted.entry(index.pack(&entry).id).or_default().push(entry);
                }
            }
        }
        let bytes: u64 = wanted
            .values()
            .flatten()
            .map(|e| u64::from(e.raw_length))
            .sum();
        progress.add_total(bytes, 0);
        progress.set_totals_known();
        let mut packs: Vec<(Id, Vec<crate::index::IndexEntry>)> = wanted.into_iter().collect();
        packs.sort_by_key(|(id, _)| *id);
        let results: Vec<Result<()>> = futures::stream::iter(packs)
            .map(|(pack, mut blobs)| {
                let progress = progress.clone();
                async move {
                    blobs.sort_by_key(|e| e.offset);
                    let path = ObjectKind::Pack.path(&pack);
                    for (start, end) in crate::pack::read_runs(&blobs, |e| (e.offset, e.length)) {
                        let first = blobs[start].offset;
                        let last = blobs[end - 1];
                        let pieces = self
                            .storage()
                            .read_range_pieces(
                                &path,
                                u64::from(first),
                                u64::from(last.offset + last.length - first),
                            )
                            .await
                            .map_err(|e| match e {
                                Error::MissingObject { .. } => Error::damaged(
                                    ObjectKind::Pack.describe(&pack),
                                    "missing from storage",
                                ),
                                other => other,
                            })?;
                        let run: Vec<crate::index::IndexEntry> = blobs[start..end].to_vec();
                        let (crypto, progress) = (self.crypto().clone(), progress.clone());
                        crate::cpu::run(move || -> Result<()> {
                            for e in run {
                                let at = (e.offset - first) as usize;
                                let stored = pieces.slice(at..at + e.length as usize).to_bytes();
                                blob::decode_with(
                                    &crypto,
                                    e.kind,
                                    &e.id,
                                    &stored,
                                    e.raw_length,
                                    |_| (),
                                )?;
                                progress.add(u64::from(e.raw_length), 0);
                            }
                            Ok(())
                        })
                        .await?;
                    }
                    Ok(())
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        results.into_iter().collect::<Result<()>>()?;
        Ok(SnapshotVerification {
            blobs: (seen.len() + trees.trees.len()) as u64,
            bytes,
        })
    }
}
