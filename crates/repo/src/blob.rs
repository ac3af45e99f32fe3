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

/// A blob ready to be placed in a pack.
pub struct EncodedBlob {
    /// Blob id (keyed hash of the plaintext).
    pub id: Id,
    /// Data or tree.
    pub kind: BlobKind,
    /// Plaintext length.
    pub raw_len: u32,
    /// Whether the payload is compressed.
    pub compressed: bool,
    /// Stored bytes.
    pub bytes: Vec<u8>,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn aad(kind: BlobKind, id: &Id) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = kind.code();
    aad[1..].copy_from_slice(id.as_bytes());
    aad
}

/// Compress `data` into `out` (appending); returns false (leaving `out`
/// untouched) when compression does not shrink it.
fn compress_into(data: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    if level == 0 || data.len() < 64 {
        return false;
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = Some((
                level,
                zstd::bulk::Compressor::new(level).expect("zstd context"),
            ));
        }
        let (_, compressor) = slot.as_mut().expect("just set");
        if data.len() > 4 * INCOMPRESSIBLE_SAMPLE {
            let sample = &data[..INCOMPRESSIBLE_SAMPLE];
            let mut probe = Vec::with_capacity(zstd::zstd_safe::compress_bound(sample.len()));
            if compressor.compress_to_buffer(sample, &mut probe).is_ok()
                && probe.len() as f64 > sample.len() as f64 * INCOMPRESSIBLE_RATIO
            {
                return false;
            }
        }
        let start = out.len();
        let bound = zstd::zstd_safe::compress_bound(data.len());
        out.resize(start + bound, 0);
        match compressor.compress_to_buffer(data, &mut out[start..]) {
            Ok(n) if n < data.len() => {
                out.truncate(start + n);
                true
            }
            _ => {
                out.truncate(start);
                false
            }
        }
    })
}

/// Compress (at `level`, 0 = never) and seal a blob whose id is known.
pub fn encode(crypto: &Crypto, kind: BlobKind, id: Id, data: &[u8], level: i32) -> EncodedBlob {
    let prefix = crypto.prefix_len();
    let mut buf = Vec::with_capacity(prefix + 1 + data.len() + crate::crypto::TAG_LEN);
    buf.resize(prefix, 0);
    buf.push(FLAG_ZSTD);
    let compressed = compress_into(data, level, &mut buf);
    if !compressed {
        buf[prefix] = FLAG_RAW;
        buf.extend_from_slice(data);
    }
    let bytes = crypto.seal_prepared(&aad(kind, &id), buf);
    EncodedBlob {
        id,
        kind,
        raw_len: data.len() as u32,
        compressed,
        bytes,
    }
}

/// Open, decompress and verify a stored blob. `raw_len` (from the index)
/// sizes the output buffer.
pub fn decode(
    crypto: &Crypto,
    kind: BlobKind,
    id: &Id,
    stored: &[u8],
    raw_len: u32,
) -> Result<Vec<u8>> {
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
    let body = crypto
        .open_to_vec(&aad(kind, id), stored)
        .map_err(|e| Error::damaged(what(), e.to_string()))?;
    let plain = match body.first().copied() {
        None => return Err(Error::damaged(what(), "empty payload")),
        Some(FLAG_RAW) => {
            let mut body = body;
            body.remove(0);
            body
        }
        Some(FLAG_ZSTD) => DECOMPRESSOR
            .with(|cell| {
                let mut slot = cell.borrow_mut();
                let decompressor = slot
                    .get_or_insert_with(|| zstd::bulk::Decompressor::new().expect("zstd context"));
                decompressor.decompress(&body[1..], raw_len as usize)
            })
            .map_err(|e| Error::damaged(what(), format!("zstd: {e}")))?,
        Some(other) => {
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
    if crypto.blob_id(&plain) != *id {
        return Err(Error::damaged(what(), "content does not match its id"));
    }
    Ok(plain)
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
            let blob = encode(&crypto, BlobKind::Data, id, &text, 3);
            assert!(blob.compressed && blob.bytes.len() < text.len() / 10);
            assert_eq!(
                decode(&crypto, BlobKind::Data, &id, &blob.bytes, text.len() as u32).unwrap(),
                text
            );

            let noise: Vec<u8> = (0..100_000u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect();
            let id = crypto.blob_id(&noise);
            let blob = encode(&crypto, BlobKind::Data, id, &noise, 3);
            assert_eq!(
                decode(
                    &crypto,
                    BlobKind::Data,
                    &id,
                    &blob.bytes,
                    noise.len() as u32
                )
                .unwrap(),
                noise
            );

            let blob = encode(&crypto, BlobKind::Tree, crypto.blob_id(b""), b"", 3);
            assert_eq!(
                decode(&crypto, BlobKind::Tree, &blob.id, &blob.bytes, 0).unwrap(),
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
            let blob = encode(&crypto, BlobKind::Data, id, &data, 3);
            let len = data.len() as u32;
            if encrypted {
                assert!(decode(&crypto, BlobKind::Tree, &id, &blob.bytes, len).is_err());
            }
            assert!(decode(&crypto, BlobKind::Data, &Id::random(), &blob.bytes, len).is_err());
            for i in 0..blob.bytes.len() {
                let mut bad = blob.bytes.clone();
                bad[i] ^= 0x80;
                assert!(
                    decode(&crypto, BlobKind::Data, &id, &bad, len).is_err(),
                    "flip at {i} undetected"
                );
            }
        }
    }
}
