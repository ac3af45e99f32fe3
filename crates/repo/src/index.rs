//! The index: which pack holds each blob, and where.
//!
//! On storage it is a set of write-once index files, each listing some packs
//! and their blobs. In memory they are merged into a [`MasterIndex`]: one
//! sorted array of fixed-size entries, about 52 bytes per blob, searched by
//! binary search.
//!
//! A pack is *live* or *marked*. Prune marks packs it wants to delete; a mark
//! only becomes a deletion after a grace period (see `prune`). Backups never
//! deduplicate against marked packs, but readers still find blobs in them,
//! since a snapshot written during the grace period may use them.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

use crate::blob::BlobKind;
use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::pack::PackEntry;

const FORMAT_VERSION: u8 = 1;
const BLOB_LEN: usize = 1 + 1 + 4 + 4 + 4 + 32;
const AAD: &[u8] = b"chom-repo index";

/// One pack as listed in an index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    /// Pack id.
    pub id: Id,
    /// Pack size in bytes.
    pub size: u64,
    /// When prune marked it for deletion; `None` while live.
    pub marked_at: Option<Timestamp>,
    /// Its blobs.
    pub blobs: Vec<PackEntry>,
}

/// The content of one index file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Index files whose content this one repeats; readers ignore them, so a
    /// crash between writing this file and deleting those is harmless.
    pub supersedes: Vec<Id>,
    /// Packs listed.
    pub packs: Vec<IndexedPack>,
}

impl IndexFile {
    /// Serialize and seal.
    pub fn encode(&self, crypto: &Crypto) -> Vec<u8> {
        let blobs: usize = self.packs.iter().map(|p| p.blobs.len()).sum();
        let mut out = Vec::with_capacity(
            9 + self.supersedes.len() * 32 + self.packs.len() * 56 + blobs * BLOB_LEN,
        );
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for id in &self.supersedes {
            out.extend_from_slice(id.as_bytes());
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for pack in &self.packs {
            out.extend_from_slice(pack.id.as_bytes());
            out.extend_from_slice(&pack.size.to_le_bytes());
            let marked = pack.marked_at.map(|t| t.as_second()).unwrap_or(0);
            out.extend_from_slice(&marked.to_le_bytes());
            out.extend_from_slice(&(pack.blobs.len() as u32).to_le_bytes());
            for b in &pack.blobs {
                out.push(b.kind.code());
                out.push(b.flags);
                out.extend_from_slice(&b.offset.to_le_bytes());
                out.extend_from_slice(&b.length.to_le_bytes());
                out.extend_from_slice(&b.raw_length.to_le_bytes());
                out.extend_from_slice(b.id.as_bytes());
            }
        }
        crypto.seal(AAD, &out)
    }

    /// Open and parse; `name` is the file's id, for messages.
    pub fn decode(crypto: &Crypto, name: &Id, sealed: Vec<u8>) -> Result<Self> {
        let damaged =
            |reason: &str| Error::damaged(format!("index {}", name.short()), reason.to_string());
        let plain = crypto
            .open(AAD, sealed)
            .map_err(|e| damaged(&e.to_string()))?;
        let mut r = Reader {
            buf: &plain,
            pos: 0,
        };
        let truncated = || damaged("truncated");
        if r.u8().ok_or_else(truncated)? != FORMAT_VERSION {
            return Err(damaged("unknown index format version"));
        }
        let n = r.u32().ok_or_else(truncated)? as usize;
        let mut supersedes = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            supersedes.push(r.id().ok_or_else(truncated)?);
        }
        let n_packs = r.u32().ok_or_else(truncated)? as usize;
        let mut packs = Vec::with_capacity(n_packs.min(1 << 20));
        for _ in 0..n_packs {
            let id = r.id().ok_or_else(truncated)?;
            let size = r.u64().ok_or_else(truncated)?;
            let marked = r.u64().ok_or_else(truncated)? as i64;
            let marked_at = if marked == 0 {
                None
            } else {
                Some(
                    Timestamp::from_second(marked)
                        .map_err(|_| damaged("mark time out of range"))?,
                )
            };
            let n_blobs = r.u32().ok_or_else(truncated)? as usize;
            let mut blobs = Vec::with_capacity(n_blobs.min(1 << 20));
            for _ in 0..n_blobs {
                let kind = BlobKind::from_code(r.u8().ok_or_else(truncated)?)
                    .ok_or_else(|| damaged("unknown blob kind"))?;
                let flags = r.u8().ok_or_else(truncated)?;
                let offset = r.u32().ok_or_else(truncated)?;
                let length = r.u32().ok_or_else(truncated)?;
                let raw_length = r.u32().ok_or_else(truncated)?;
                let id = r.id().ok_or_else(truncated)?;
                blobs.push(PackEntry {
                    id,
                    kind,
                    flags,
                    offset,
                    length,
                    raw_length,
                });
            }
            packs.push(IndexedPack {
                id,
                size,
                marked_at,
                blobs,
            });
        }
        if r.pos != plain.len() {
            return Err(damaged("trailing bytes"));
        }
        Ok(IndexFile { supersedes, packs })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    }
    fn id(&mut self) -> Option<Id> {
        self.take(32).and_then(Id::from_slice)
    }
}

/// A pack as known to the merged index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    /// Pack id.
    pub id: Id,
    /// Size in bytes.
    pub size: u64,
    /// Set while marked for deletion.
    pub marked_at: Option<Timestamp>,
}

/// Where a blob is: one compact entry of the merged index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Blob id.
    pub id: Id,
    /// Position of the pack in [`MasterIndex::packs`].
    pub pack: u32,
    /// Offset in the pack.
    pub offset: u32,
    /// Stored length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
    /// Data or tree.
    pub kind: BlobKind,
    /// Flag bits of the pack entry.
    pub flags: u8,
}

/// All index files merged for lookups.
#[derive(Debug, Default)]
pub struct MasterIndex {
    packs: Vec<PackInfo>,
    /// Blobs of live packs, sorted by id, one entry per id.
    live: Vec<IndexEntry>,
    /// Blobs found only in marked packs, sorted by id.
    marked: Vec<IndexEntry>,
    /// Index files in effect (not superseded).
    files: Vec<Id>,
    /// Every index file read (superseded ones too).
    seen: Vec<Id>,
}

impl MasterIndex {
    /// Merge index files. Files superseded by another are skipped; a pack
    /// listed live anywhere is live (a backup that finished after prune
    /// marked its pack revives it).
    pub fn build(files: &[(Id, IndexFile)]) -> Self {
        let superseded: HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let effective: Vec<&(Id, IndexFile)> = files
            .iter()
            .filter(|(id, _)| !superseded.contains(id))
            .collect();

        let mut status: HashMap<Id, (u64, Option<Timestamp>)> = HashMap::new();
        for (_, file) in &effective {
            for p in &file.packs {
                status
                    .entry(p.id)
                    .and_modify(|(_, m)| {
                        *m = match (*m, p.marked_at) {
                            (None, _) | (_, None) => None,
                            (Some(a), Some(b)) => Some(a.max(b)),
                        }
                    })
                    .or_insert((p.size, p.marked_at));
            }
        }
        let mut packs = Vec::with_capacity(status.len());
        let mut pack_pos = HashMap::with_capacity(status.len());
        for (_, file) in &effective {
            for p in &file.packs {
                if let std::collections::hash_map::Entry::Vacant(v) = pack_pos.entry(p.id) {
                    v.insert(packs.len() as u32);
                    let (size, marked_at) = status[&p.id];
                    packs.push(PackInfo {
                        id: p.id,
                        size,
                        marked_at,
                    });
                }
            }
        }
        let mut live = Vec::new();
        let mut marked = Vec::new();
        let mut seen_packs = HashSet::new();
        for (_, file) in &effective {
            for p in &file.packs {
                if !seen_packs.insert(p.id) {
                    continue;
                }
                let pos = pack_pos[&p.id];
                let target = if packs[pos as usize].marked_at.is_none() {
                    &mut live
                } else {
                    &mut marked
                };
                target.extend(p.blobs.iter().map(|b| IndexEntry {
                    id: b.id,
                    pack: pos,
                    offset: b.offset,
                    length: b.length,
                    raw_length: b.raw_length,
                    kind: b.kind,
                    flags: b.flags,
                }));
            }
        }
        live.sort_unstable_by_key(|e| e.id);
        live.dedup_by(|a, b| a.id == b.id);
        live.shrink_to_fit();
        let live_ids = |id: &Id| live.binary_search_by(|e| e.id.cmp(id)).is_ok();
        marked.retain(|e| !live_ids(&e.id));
        marked.sort_unstable_by_key(|e| e.id);
        marked.dedup_by(|a, b| a.id == b.id);
        marked.shrink_to_fit();
        MasterIndex {
            packs,
            live,
            marked,
            files: effective.iter().map(|(id, _)| *id).collect(),
            seen: files.iter().map(|(id, _)| *id).collect(),
        }
    }

    /// This index plus newly written index files, without re-reading the
    /// old ones. `None` when the new files change more than they add (they
    /// supersede files, mark packs, or revive marked ones): then the caller
    /// rebuilds from every file.
    pub fn extended(&self, new_files: &[(Id, IndexFile)]) -> Option<MasterIndex> {
        let mut packs = self.packs.clone();
        let mut positions: HashMap<Id, u32> = packs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i as u32))
            .collect();
        let mut live = self.live.clone();
        for (_, file) in new_files {
            if !file.supersedes.is_empty() {
                return None;
            }
            for p in &file.packs {
                if p.marked_at.is_some() {
                    return None;
                }
                match positions.get(&p.id) {
                    Some(&pos) if packs[pos as usize].marked_at.is_some() => return None,
                    Some(_) => continue,
                    None => {}
                }
                let pos = packs.len() as u32;
                positions.insert(p.id, pos);
                packs.push(PackInfo {
                    id: p.id,
                    size: p.size,
                    marked_at: None,
                });
                live.extend(p.blobs.iter().map(|b| IndexEntry {
                    id: b.id,
                    pack: pos,
                    offset: b.offset,
                    length: b.length,
                    raw_length: b.raw_length,
                    kind: b.kind,
                    flags: b.flags,
                }));
            }
        }
        live.sort_by_key(|e| e.id);
        live.dedup_by(|a, b| a.id == b.id);
        let mut marked = self.marked.clone();
        marked.retain(|e| live.binary_search_by(|l| l.id.cmp(&e.id)).is_err());
        let mut files = self.files.clone();
        let mut seen = self.seen.clone();
        for (id, _) in new_files {
            files.push(*id);
            seen.push(*id);
        }
        Some(MasterIndex {
            packs,
            live,
            marked,
            files,
            seen,
        })
    }

    /// Every index file this index was built from (superseded ones too).
    pub fn seen_files(&self) -> &[Id] {
        &self.seen
    }

    /// A blob in a live pack: what backups deduplicate against.
    pub fn get_live(&self, id: &Id) -> Option<&IndexEntry> {
        self.live
            .binary_search_by(|e| e.id.cmp(id))
            .ok()
            .map(|i| &self.live[i])
    }

    /// A blob anywhere, live packs first: what readers use.
    pub fn get(&self, id: &Id) -> Option<&IndexEntry> {
        self.get_live(id).or_else(|| {
            self.marked
                .binary_search_by(|e| e.id.cmp(id))
                .ok()
                .map(|i| &self.marked[i])
        })
    }

    /// The pack of an entry.
    pub fn pack(&self, entry: &IndexEntry) -> &PackInfo {
        &self.packs[entry.pack as usize]
    }

    /// All packs known to the index.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// Index files in effect.
    pub fn files(&self) -> &[Id] {
        &self.files
    }

    /// Number of distinct live blobs.
    pub fn live_blob_count(&self) -> usize {
        self.live.len()
    }

    /// Live entries in id order.
    pub fn live_entries(&self) -> &[IndexEntry] {
        &self.live
    }

    /// Bytes of memory held, for the memory-per-blob measurement.
    pub fn memory_bytes(&self) -> usize {
        self.live.capacity() * std::mem::size_of::<IndexEntry>()
            + self.marked.capacity() * std::mem::size_of::<IndexEntry>()
            + self.packs.capacity() * std::mem::size_of::<PackInfo>()
            + (self.files.capacity() + self.seen.capacity()) * std::mem::size_of::<Id>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    fn entry(id: Id, offset: u32) -> PackEntry {
        PackEntry {
            id,
            kind: BlobKind::Data,
            flags: 0,
            offset,
            length: 10,
            raw_length: 9,
        }
    }

    #[test]
    fn encode_decode_and_tamper() {
        let crypto = Crypto::new(&MasterKey::generate(), true);
        let file = IndexFile {
            supersedes: vec![Id::random()],
            packs: vec![IndexedPack {
                id: Id::random(),
                size: 1234,
                marked_at: Some(Timestamp::from_second(1_700_000_000).unwrap()),
                blobs: vec![entry(Id::random(), 0), entry(Id::random(), 10)],
            }],
        };
        let bytes = file.encode(&crypto);
        let name = Id::of_object(&bytes);
        assert_eq!(
            IndexFile::decode(&crypto, &name, bytes.clone()).unwrap(),
            file
        );
        let mut bad = bytes;
        bad[30] ^= 4;
        assert!(IndexFile::decode(&crypto, &name, bad).is_err());
    }

    #[test]
    fn memory_per_blob_stays_under_100_bytes() {
        let packs: Vec<IndexedPack> = (0..200)
            .map(|_| IndexedPack {
                id: Id::random(),
                size: 16 << 20,
                marked_at: None,
                blobs: (0..1000u32).map(|i| entry(Id::random(), i * 10)).collect(),
            })
            .collect();
        let index = MasterIndex::build(&[(
            Id::random(),
            IndexFile {
                supersedes: vec![],
                packs,
            },
        )]);
        assert_eq!(index.live_blob_count(), 200_000);
        let per_blob = index.memory_bytes() as f64 / 200_000.0;
        assert_eq!(std::mem::size_of::<IndexEntry>(), 52);
        assert!(per_blob <= 60.0, "{per_blob} bytes per blob");
    }

    #[test]
    fn extending_equals_rebuilding_for_new_backups() {
        let pack = |blobs: Vec<PackEntry>| IndexedPack {
            id: Id::random(),
            size: 100,
            marked_at: None,
            blobs,
        };
        let (a, b, c) = (Id::random(), Id::random(), Id::random());
        let first = (
            Id::random(),
            IndexFile {
                supersedes: vec![],
                packs: vec![pack(vec![entry(a, 0), entry(b, 10)])],
            },
        );
        let second = (
            Id::random(),
            IndexFile {
                supersedes: vec![],
                packs: vec![pack(vec![entry(b, 0), entry(c, 10)])],
            },
        );
        let extended = MasterIndex::build(std::slice::from_ref(&first))
            .extended(std::slice::from_ref(&second))
            .unwrap();
        let rebuilt = MasterIndex::build(&[first.clone(), second]);
        for id in [a, b, c] {
            assert_eq!(
                extended.get_live(&id).is_some(),
                rebuilt.get_live(&id).is_some()
            );
        }
        assert_eq!(extended.live_blob_count(), 3);
        assert_eq!(extended.seen_files().len(), 2);
        // A prune's file (it supersedes others) needs a rebuild.
        let prune = (
            Id::random(),
            IndexFile {
                supersedes: vec![first.0],
                packs: vec![],
            },
        );
        assert!(
            MasterIndex::build(std::slice::from_ref(&first))
                .extended(&[prune])
                .is_none()
        );
    }

    #[test]
    fn merge_prefers_live_and_honours_supersedes() {
        let (a, b, pack1, pack2) = (Id::random(), Id::random(), Id::random(), Id::random());
        let marked = Some(Timestamp::now());
        let old = IndexFile {
            supersedes: vec![],
            packs: vec![IndexedPack {
                id: pack1,
                size: 1,
                marked_at: None,
                blobs: vec![entry(a, 0)],
            }],
        };
        let old_id = Id::random();
        let prune = IndexFile {
            supersedes: vec![old_id],
            packs: vec![
                IndexedPack {
                    id: pack1,
                    size: 1,
                    marked_at: marked,
                    blobs: vec![entry(a, 0)],
                },
                IndexedPack {
                    id: pack2,
                    size: 1,
                    marked_at: marked,
                    blobs: vec![entry(b, 0)],
                },
            ],
        };
        let late_backup = IndexFile {
            supersedes: vec![],
            packs: vec![IndexedPack {
                id: pack2,
                size: 1,
                marked_at: None,
                blobs: vec![entry(b, 0)],
            }],
        };
        let index = MasterIndex::build(&[
            (old_id, old),
            (Id::random(), prune),
            (Id::random(), late_backup),
        ]);
        assert_eq!(index.files().len(), 2, "superseded file ignored");
        assert!(
            index.get_live(&a).is_none(),
            "pack1 is marked: no dedup against it"
        );
        assert!(index.get(&a).is_some(), "but readers still find it");
        let b_entry = index.get_live(&b).expect("pack2 revived by a live listing");
        assert_eq!(index.pack(b_entry).id, pack2);
        assert!(index.pack(b_entry).marked_at.is_none());
    }
}
