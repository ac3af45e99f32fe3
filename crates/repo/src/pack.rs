//! Pack files: many blobs in one storage object, followed by a sealed header
//! that lists them, so the index can always be rebuilt from the packs alone.
//!
//! ```text
//! blob_0 || blob_1 || ... || blob_n-1 || seal(header) || header_len (u32 LE)
//! header = version (u8 = 1) || count (u32 LE) || count * entry
//! entry  = kind (u8) || flags (u8) || length (u32 LE) || raw_length (u32 LE) || id (32 bytes)
//! ```
//!
//! Blob `i` starts where blob `i-1` ends (the first at offset 0). A pack is
//! named by the BLAKE3 hash of all its bytes.

use crate::blob::{BlobKind, EncodedBlob};
use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::id::Id;

const HEADER_VERSION: u8 = 1;
const ENTRY_LEN: usize = 1 + 1 + 4 + 4 + 32;
const HEADER_AAD: &[u8] = b"chom-repo pack header";

/// Flag bit: the blob's payload is zstd-compressed.
pub const FLAG_COMPRESSED: u8 = 1;

/// One blob's place in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// Blob id.
    pub id: Id,
    /// Data or tree.
    pub kind: BlobKind,
    /// Flag bits ([`FLAG_COMPRESSED`]).
    pub flags: u8,
    /// Offset of the stored blob in the pack.
    pub offset: u32,
    /// Stored length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

impl PackEntry {
    /// Whether the payload is compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }
}

/// A pack being filled in memory.
pub struct PackBuilder {
    kind: BlobKind,
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A finished pack, ready to upload.
pub struct FinishedPack {
    /// Name of the pack (hash of `bytes`).
    pub id: Id,
    /// Whole pack.
    pub bytes: Vec<u8>,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack for blobs of one kind, with room for `capacity` bytes.
    pub fn new(kind: BlobKind, capacity: usize) -> Self {
        PackBuilder {
            kind,
            bytes: Vec::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Append a blob.
    pub fn add(&mut self, blob: &EncodedBlob<'_>) {
        debug_assert_eq!(blob.kind, self.kind);
        self.entries.push(PackEntry {
            id: blob.id,
            kind: blob.kind,
            flags: if blob.compressed { FLAG_COMPRESSED } else { 0 },
            offset: self.bytes.len() as u32,
            length: blob.bytes.len() as u32,
            raw_length: blob.raw_len,
        });
        self.bytes.extend_from_slice(blob.bytes);
    }

    /// Seal the header, append it and name the pack.
    pub fn finish(mut self, crypto: &Crypto) -> FinishedPack {
        let header = crypto.seal(HEADER_AAD, &encode_header(&self.entries));
        self.bytes.extend_from_slice(&header);
        self.bytes
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        FinishedPack {
            id: Id::of_object(&self.bytes),
            bytes: self.bytes,
            entries: self.entries,
        }
    }
}

fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.len() * ENTRY_LEN);
    out.push(HEADER_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.push(e.kind.code());
        out.push(e.flags);
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_length.to_le_bytes());
        out.extend_from_slice(e.id.as_bytes());
    }
    out
}

/// How many bytes at the end of a pack hold the header, given the pack's
/// last four bytes.
pub fn header_len_from_trailer(trailer: &[u8]) -> u32 {
    u32::from_le_bytes(trailer.try_into().expect("4-byte trailer"))
}

/// Parse a pack's header from the sealed header bytes; `pack_len` is the
/// whole pack's size (to check the listed blobs fit before the header).
pub fn parse_header(
    crypto: &Crypto,
    pack: &Id,
    sealed: Vec<u8>,
    pack_len: u64,
) -> Result<Vec<PackEntry>> {
    let what = || format!("pack {}", pack.short());
    let header_len = sealed.len() as u64;
    let plain = crypto
        .open(HEADER_AAD, sealed)
        .map_err(|e| Error::damaged(what(), format!("header: {e}")))?;
    if plain.len() < 5 || plain[0] != HEADER_VERSION {
        return Err(Error::damaged(what(), "header has an unknown version"));
    }
    let count = u32::from_le_bytes(plain[1..5].try_into().expect("4 bytes")) as usize;
    if plain.len() != 5 + count * ENTRY_LEN {
        return Err(Error::damaged(
            what(),
            "header length does not match its entry count",
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut offset = 0u64;
    for raw in plain[5..].chunks_exact(ENTRY_LEN) {
        let kind = BlobKind::from_code(raw[0])
            .ok_or_else(|| Error::damaged(what(), "header lists an unknown blob kind"))?;
        let length = u32::from_le_bytes(raw[2..6].try_into().expect("4 bytes"));
        entries.push(PackEntry {
            kind,
            flags: raw[1],
            offset: offset as u32,
            length,
            raw_length: u32::from_le_bytes(raw[6..10].try_into().expect("4 bytes")),
            id: Id::from_slice(&raw[10..]).expect("32 bytes"),
        });
        offset += u64::from(length);
    }
    if offset + header_len + 4 != pack_len {
        return Err(Error::damaged(
            what(),
            "blobs listed in the header do not fill the pack",
        ));
    }
    Ok(entries)
}

/// Read and parse the header of a whole pack held in memory (as the
/// storage backend's pieces).
pub fn header_of(crypto: &Crypto, pack: &Id, bytes: &opendal::Buffer) -> Result<Vec<PackEntry>> {
    let what = || format!("pack {}", pack.short());
    let len = bytes.len();
    if len < 4 {
        return Err(Error::damaged(what(), "shorter than its trailer"));
    }
    let header_len = header_len_from_trailer(&bytes.slice(len - 4..).to_vec()) as usize;
    if header_len + 4 > len {
        return Err(Error::damaged(what(), "header length exceeds the pack"));
    }
    let start = len - 4 - header_len;
    parse_header(
        crypto,
        pack,
        bytes.slice(start..len - 4).to_vec(),
        len as u64,
    )
}

/// Blobs less than this far apart are read in one request.
const RUN_GAP: u32 = 1024 * 1024;
/// A read request stops growing at this size, which bounds the memory of
/// reads in flight.
const RUN_LIMIT: u32 = 8 * 1024 * 1024;

/// Group blobs of one pack (sorted by offset; `place` gives offset and
/// length) into read requests, as `(first, end)` index ranges.
pub(crate) fn read_runs<T>(blobs: &[T], place: impl Fn(&T) -> (u32, u32)) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, b) in blobs.iter().enumerate() {
        let (offset, length) = place(b);
        if let Some((start, end)) = runs.last_mut() {
            let (run_start, _) = place(&blobs[*start]);
            let (prev_offset, prev_length) = place(&blobs[*end - 1]);
            let close = offset <= prev_offset + prev_length + RUN_GAP;
            let small = offset + length - run_start <= RUN_LIMIT;
            if close && small {
                *end = i + 1;
                continue;
            }
        }
        runs.push((i, i + 1));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob;
    use crate::crypto::MasterKey;

    #[test]
    fn read_runs_merge_close_blobs_and_cap_size() {
        let mib = 1024 * 1024;
        let blobs = [
            (0, mib),
            (mib, mib),
            (2 * mib + 10, mib),
            (20 * mib, mib),
            (21 * mib, 9 * mib),
        ];
        assert_eq!(read_runs(&blobs, |b| *b), vec![(0, 3), (3, 4), (4, 5)]);
    }

    #[test]
    fn build_and_parse() {
        let crypto = Crypto::new(&MasterKey::generate(), true);
        let mut builder = PackBuilder::new(BlobKind::Data, 1024);
        let mut blobs = Vec::new();
        for i in 0..5u8 {
            let data = vec![i; 1000 * (i as usize + 1)];
            let id = crypto.blob_id(&data);
            blob::encode_with(&crypto, BlobKind::Data, id, &data, 3, |b| builder.add(b));
            blobs.push((id, data));
        }
        let pack = builder.finish(&crypto);
        assert_eq!(pack.id, Id::of_object(&pack.bytes));
        let entries = header_of(
            &crypto,
            &pack.id,
            &opendal::Buffer::from(pack.bytes.clone()),
        )
        .unwrap();
        assert_eq!(entries, pack.entries);
        for (entry, (id, data)) in entries.iter().zip(&blobs) {
            let stored =
                pack.bytes[entry.offset as usize..(entry.offset + entry.length) as usize].to_vec();
            assert_eq!(
                &blob::decode(&crypto, BlobKind::Data, id, &stored, entry.raw_length).unwrap(),
                data
            );
        }
        let mut bad = pack.bytes.clone();
        let n = bad.len();
        bad[n - 10] ^= 1;
        assert!(header_of(&crypto, &pack.id, &opendal::Buffer::from(bad)).is_err());
    }
}
