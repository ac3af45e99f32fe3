//! Blobs: the chunks of file content and the serialized trees, each
//! compressed (when that helps) and sealed on its own.
//!
//! Stored form: `seal(flag || payload)` where `flag` is 0 for raw bytes and 1
//! for a zstd frame, and the associated data is `kind byte || blob id`. A blob
//! moved to another id or kind fails authentication; after opening, the
//! payload is also hashed again and compared with its id.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::id::Id;

/// What a blob holds. Data and tree blobs live in separate packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A chunk of file content.
    Data,
    /// A serialized directory listing.
    Tree,
}

impl BlobKind {
    /// Byte used in pack headers, index files and associated data.
    pub fn code(self) -> u8 {
        match self {
            BlobKind::Data => 1,
            BlobKind::Tree => 2,
        }
    }

    /// Inverse of [`BlobKind::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(BlobKind::Data),
            2 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

const FLAG_RAW: u8 = 0;
const FLAG_ZSTD: u8 = 1;

/// Content whose first 16 KiB does not compress below this share of its size
/// is stored raw without compressing the rest (media, archives, ciphertext).
const INCOMPRESSIBLE_SAMPLE: usize = 16 * 1024;
const INCOMPRESSIBLE_RATIO: f64 = 0.97;

/// A blob ready to be placed in a pack. It borrows its bytes: encoding
/// reuses one buffer per thread, and the packer copies the bytes into the pack.
pub struct EncodedBlob<'a> {
    /// Blob id (keyed hash of the plaintext).
    pub id: Id,
    /// Data or tree.
    pub kind: BlobKind,
    /// Plaintext length.
    pub raw_len: u32,
    /// Whether the payload is compressed.
    pub compressed: bool,
    /// Stored bytes.
    pub bytes: &'a [u8],
}

/// Per-thread buffers and zstd contexts. Encoding and decoding allocate
/// nothing per blob once these have grown: large allocations are costly here
/// (the allocator maps and unmaps them), and blobs come by the thousand.
#[derive(Default)]
struct Scratch {
    compressor: Option<(i32, zstd::bulk::Compressor<'static>)>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    sealed: Vec<u8>,
    probe: Vec<u8>,
    plain: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn aad(kind: BlobKind, id: &Id) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = kind.code();
    aad[1..].copy_from_slice(id.as_bytes());
    aad
}

/// Append zstd(`data`) to `out`; returns false (leaving `out` as it was)
/// when compression does not pay.
fn compress_into(scratch: &mut Scratch, data: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    if level == 0 || data.len() < 64 {
        return false;
    }
    if scratch.compressor.as_ref().map(|(l, _)| *l) != Some(level) {
        scratch.compressor = Some((
            level,
            zstd::bulk::Compressor::new(level).expect("zstd context"),
        ));
    }
    let (_, compressor) = scratch.compressor.as_mut().expect("just set");
    if data.len() > 4 * INCOMPRESSIBLE_SAMPLE {
        let sample = &data[..INCOMPRESSIBLE_SAMPLE];
        scratch.probe.clear();
        scratch
            .probe
            .reserve(zstd::zstd_safe::compress_bound(sample.len()));
        if compressor
            .compress_to_buffer(sample, &mut scratch.probe)
            .is_ok()
            && scratch.probe.len() as f64 > sample.len() as f64 * INCOMPRESSIBLE_RATIO
        {
            return false;
        }
    }
    let start = out.len();
    out.reserve(zstd::zstd_safe::compress_bound(data.len()));
    // A cursor writes into the spare capacity after `start` without
    // zero-filling it first.
    let mut cursor = std::io::Cursor::new(&mut *out);
    cursor.set_position(start as u64);
    match compressor.compress_to_buffer(data, &mut cursor) {
        Ok(n) if n < data.len() => true,
        _ => {
            out.truncate(start);
            false
        }
    }
}

/// Compress (at `level`, 0 = never) and seal a blob whose id is known, and
/// hand the result to `f`.
pub fn encode_with<R>(
    crypto: &Crypto,
    kind: BlobKind,
    id: Id,
    data: &[u8],
    level: i32,
    f: impl FnOnce(&EncodedBlob<'_>) -> R,
) -> R {
    SCRATCH.with(|cell| {
        let scratch = &mut *cell.borrow_mut();
        let mut buf = std::mem::take(&mut scratch.sealed);
        buf.clear();
        let prefix = crypto.prefix_len();
        buf.resize(prefix, 0);
        buf.push(FLAG_ZSTD);
        let compressed = compress_into(scratch, data, level, &mut buf);
        if !compressed {
            buf[prefix] = FLAG_RAW;
            buf.extend_from_slice(data);
        }
        crypto.seal_in_place(&aad(kind, &id), &mut buf);
        let result = f(&EncodedBlob {
            id,
            kind,
            raw_len: data.len() as u32,
            compressed,
            bytes: &buf,
        });
        scratch.sealed = buf;
        result
    })
}

/// Open, decompress and verify a stored blob, and hand the plaintext to `f`
/// (no allocation per blob). `raw_len` comes from the index.
pub fn decode_with<R>(
    crypto: &Crypto,
    kind: BlobKind,
    id: &Id,
    stored: &[u8],
    raw_len: u32,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R> {
    let what = || {
        format!(
            "{} blob {}",
            if kind == BlobKind::Data {
                "data"
            } else {
                "tree"
            },
            id.short()
        )
    };
    SCRATCH.with(|cell| {
        let scratch = &mut *cell.borrow_mut();
        let body: &[u8] = if crypto.is_encrypted() {
            let range = crypto
                .open_into(&aad(kind, id), stored, &mut scratch.sealed)
                .map_err(|e| Error::damaged(what(), e.to_string()))?;
            &scratch.sealed[range]
        } else {
            stored
        };
        let plain: &[u8] = match body.split_first() {
            None => return Err(Error::damaged(what(), "empty payload")),
            Some((&FLAG_RAW, rest)) => rest,
            Some((&FLAG_ZSTD, rest)) => {
                let decompressor = scratch
                    .decompressor
                    .get_or_insert_with(|| zstd::bulk::Decompressor::new().expect("zstd context"));
                scratch.plain.clear();
                scratch.plain.reserve(raw_len as usize);
                decompressor
                    .decompress_to_buffer(rest, &mut scratch.plain)
                    .map_err(|e| Error::damaged(what(), format!("zstd: {e}")))?;
                &scratch.plain
            }
            Some((other, _)) => {
                return Err(Error::damaged(
                    what(),
                    format!("unknown payload flag {other}"),
                ));
            }
        };
        if plain.len() != raw_len as usize {
            return Err(Error::damaged(
                what(),
                format!("length {} differs from the index's {raw_len}", plain.len()),
            ));
        }
        if crypto.blob_id(plain) != *id {
            return Err(Error::damaged(what(), "content does not match its id"));
        }
        Ok(f(plain))
    })
}

/// [`decode_with`] into a new buffer.
pub fn decode(
    crypto: &Crypto,
    kind: BlobKind,
    id: &Id,
    stored: &[u8],
    raw_len: u32,
) -> Result<Vec<u8>> {
    decode_with(crypto, kind, id, stored, raw_len, <[u8]>::to_vec)
}

/// [`encode_with`] into a new buffer (tests and tools).
#[cfg(test)]
pub fn encode(crypto: &Crypto, kind: BlobKind, id: Id, data: &[u8], level: i32) -> (bool, Vec<u8>) {
    encode_with(crypto, kind, id, data, level, |b| {
        (b.compressed, b.bytes.to_vec())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn round_trip_compressed_raw_and_unencrypted() {
        for encrypted in [true, false] {
            let crypto = Crypto::new(&MasterKey::generate(), encrypted);
            let text = b"the quick brown fox ".repeat(1000);
            let id = crypto.blob_id(&text);
            let (compressed, bytes) = encode(&crypto, BlobKind::Data, id, &text, 3);
            assert!(compressed && bytes.len() < text.len() / 10);
            assert_eq!(
                decode(&crypto, BlobKind::Data, &id, &bytes, text.len() as u32).unwrap(),
                text
            );

            let mut x = 0x2545_F491_4F6C_DD1Du64;
            let noise: Vec<u8> = (0..100_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            let id = crypto.blob_id(&noise);
            let (compressed, bytes) = encode(&crypto, BlobKind::Data, id, &noise, 3);
            assert!(!compressed, "incompressible data is stored raw");
            assert_eq!(
                decode(&crypto, BlobKind::Data, &id, &bytes, noise.len() as u32).unwrap(),
                noise
            );

            let empty = crypto.blob_id(b"");
            let (_, bytes) = encode(&crypto, BlobKind::Tree, empty, b"", 3);
            assert_eq!(
                decode(&crypto, BlobKind::Tree, &empty, &bytes, 0).unwrap(),
                b""
            );
        }
    }

    #[test]
    fn swapped_kind_id_or_flipped_byte_is_rejected() {
        for encrypted in [true, false] {
            let crypto = Crypto::new(&MasterKey::generate(), encrypted);
            let data = b"some file content".repeat(10);
            let id = crypto.blob_id(&data);
            let (_, bytes) = encode(&crypto, BlobKind::Data, id, &data, 3);
            let len = data.len() as u32;
            if encrypted {
                assert!(decode(&crypto, BlobKind::Tree, &id, &bytes, len).is_err());
            }
            assert!(decode(&crypto, BlobKind::Data, &Id::random(), &bytes, len).is_err());
            for i in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x80;
                assert!(
                    decode(&crypto, BlobKind::Data, &id, &bad, len).is_err(),
                    "flip at {i} undetected"
                );
            }
        }
    }
}
