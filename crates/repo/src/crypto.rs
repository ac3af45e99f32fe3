//! Keys and authenticated encryption.
//!
//! One random 256-bit master key per repository. Everything else is derived
//! from it with BLAKE3's key derivation mode, each with its own context
//! string, so that no two uses share a key:
//!
//! * the XChaCha20-Poly1305 key that seals blobs, pack headers, index files
//!   and snapshots;
//! * the BLAKE3 key of chunk ids (ids reveal nothing without it);
//! * the chunker's gear table (cut points reveal nothing without it).
//!
//! A sealed message is `nonce (24 bytes) || ciphertext || tag (16 bytes)`,
//! with a fresh random nonce each time and caller-chosen associated data. A
//! repository created with `--no-encryption` keeps the same derivations but
//! stores messages in the clear.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::id::Id;

/// Bytes of nonce in front of every sealed message.
pub const NONCE_LEN: usize = 24;
/// Bytes of authentication tag after every sealed message.
pub const TAG_LEN: usize = 16;
/// Total overhead of sealing.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

const CONTEXT_ENCRYPTION: &str = "chom-repo v1 2026-11 blob and object encryption";
const CONTEXT_CHUNK_ID: &str = "chom-repo v1 2026-11 chunk id";
const CONTEXT_GEAR: &str = "chom-repo v1 2026-11 chunker gear table";

/// Fill `buf` with bytes from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// The repository master key: 32 random bytes, wiped from memory on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        fill_random(&mut key);
        MasterKey(key)
    }

    /// Wrap existing key bytes (read from a key slot).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(bytes)
    }

    /// The raw key, for wrapping into a key slot.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why an `open` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than nonce and tag.
    Truncated,
    /// The tag does not match: wrong key, wrong associated data, or damage.
    Forged,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Truncated => f.write_str("too short to hold a sealed message"),
            OpenError::Forged => f.write_str("authentication failed (modified, swapped or forged)"),
        }
    }
}

/// Seal `plaintext` under `key` with a fresh nonce.
pub fn seal_with(key: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.resize(NONCE_LEN, 0);
    fill_random(&mut out[..NONCE_LEN]);
    out.extend_from_slice(plaintext);
    seal_in_place(key, aad, &mut out);
    out
}

/// Encrypt `buf[NONCE_LEN..]` in place, using `buf[..NONCE_LEN]` as the
/// (already random) nonce, and append the tag.
fn seal_in_place(key: &XChaCha20Poly1305, aad: &[u8], buf: &mut Vec<u8>) {
    let (nonce, body) = buf.split_at_mut(NONCE_LEN);
    let nonce = XNonce::try_from(&*nonce).expect("nonce length");
    let tag = key
        .encrypt_inout_detached(&nonce, aad, body.into())
        .expect("message within XChaCha20-Poly1305 limits");
    buf.extend_from_slice(&tag);
}

/// Open a sealed message in place; on success returns the plaintext range.
pub fn open_with(
    key: &XChaCha20Poly1305,
    aad: &[u8],
    sealed: &mut [u8],
) -> Result<std::ops::Range<usize>, OpenError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(OpenError::Truncated);
    }
    let body_end = sealed.len() - TAG_LEN;
    let (head, tag) = sealed.split_at_mut(body_end);
    let tag = Tag::try_from(&*tag).expect("tag length");
    let (nonce, body) = head.split_at_mut(NONCE_LEN);
    let nonce = XNonce::try_from(&*nonce).expect("nonce length");
    key.decrypt_inout_detached(&nonce, aad, body.into(), &tag)
        .map_err(|_| OpenError::Forged)?;
    Ok(NONCE_LEN..body_end)
}

/// Make an AEAD key from 32 bytes.
pub fn aead_key(bytes: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&Key::from(*bytes))
}

/// The keys a repository works with, derived from its master key.
pub struct Crypto {
    /// `None` for repositories created with `--no-encryption`.
    cipher: Option<XChaCha20Poly1305>,
    id_key: [u8; 32],
    gear: Box<[u64; 256]>,
}

impl Crypto {
    /// Derive all working keys from the master key.
    pub fn new(master: &MasterKey, encrypted: bool) -> Self {
        let mut enc = blake3::derive_key(CONTEXT_ENCRYPTION, master.as_bytes());
        let cipher = encrypted.then(|| aead_key(&enc));
        enc.zeroize();
        let id_key = blake3::derive_key(CONTEXT_CHUNK_ID, master.as_bytes());
        let gear_key = blake3::derive_key(CONTEXT_GEAR, master.as_bytes());
        let mut xof = blake3::Hasher::new_keyed(&gear_key).finalize_xof();
        let mut raw = [0u8; 256 * 8];
        xof.fill(&mut raw);
        let mut gear = Box::new([0u64; 256]);
        for (slot, bytes) in gear.iter_mut().zip(raw.chunks_exact(8)) {
            *slot = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        }
        Crypto {
            cipher,
            id_key,
            gear,
        }
    }

    /// Whether messages are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// The id of a chunk or tree: keyed BLAKE3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id::new(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// The secret gear table of the chunker.
    pub fn gear(&self) -> &[u64; 256] {
        &self.gear
    }

    /// Bytes a sealed message adds to its plaintext.
    pub fn overhead(&self) -> usize {
        if self.is_encrypted() {
            SEAL_OVERHEAD
        } else {
            0
        }
    }

    /// Bytes to reserve in front of a plaintext built in place for
    /// [`Crypto::seal_in_place`].
    pub fn prefix_len(&self) -> usize {
        if self.is_encrypted() { NONCE_LEN } else { 0 }
    }

    /// Seal a message (or copy it, without encryption).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        match &self.cipher {
            Some(key) => seal_with(key, aad, plaintext),
            None => plaintext.to_vec(),
        }
    }

    /// Seal a buffer whose first [`Crypto::prefix_len`] bytes are reserved
    /// and whose remainder is the plaintext, without copying it.
    pub fn seal_in_place(&self, aad: &[u8], buf: &mut Vec<u8>) {
        if let Some(key) = &self.cipher {
            fill_random(&mut buf[..NONCE_LEN]);
            seal_in_place(key, aad, buf);
        }
    }

    /// Open a borrowed sealed message into `out` (its previous content is
    /// replaced; its capacity reused) and return the plaintext's range in it.
    pub fn open_into(
        &self,
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<std::ops::Range<usize>, OpenError> {
        out.clear();
        out.extend_from_slice(sealed);
        self.open_in_place(aad, out)
    }

    /// Open a sealed message in place and return the plaintext range.
    pub fn open_in_place(
        &self,
        aad: &[u8],
        sealed: &mut [u8],
    ) -> Result<std::ops::Range<usize>, OpenError> {
        match &self.cipher {
            Some(key) => open_with(key, aad, sealed),
            None => Ok(0..sealed.len()),
        }
    }

    /// Open a sealed message into a new buffer.
    pub fn open(&self, aad: &[u8], mut sealed: Vec<u8>) -> Result<Vec<u8>, OpenError> {
        let range = self.open_in_place(aad, &mut sealed)?;
        sealed.truncate(range.end);
        sealed.drain(..range.start);
        Ok(sealed)
    }
}

impl Drop for Crypto {
    fn drop(&mut self) {
        self.id_key.zeroize();
        self.gear.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let crypto = Crypto::new(&MasterKey::generate(), true);
        let sealed = crypto.seal(b"aad", b"secret message");
        assert_eq!(sealed.len(), 14 + SEAL_OVERHEAD);
        assert_eq!(
            crypto.open(b"aad", sealed.clone()).unwrap(),
            b"secret message"
        );
        assert_eq!(
            crypto.open(b"other", sealed.clone()),
            Err(OpenError::Forged)
        );
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                crypto.open(b"aad", bad),
                Err(OpenError::Forged),
                "flip at {i}"
            );
        }
        assert_eq!(crypto.open(b"aad", vec![0; 10]), Err(OpenError::Truncated));
    }

    #[test]
    fn nonces_differ_and_keys_are_independent() {
        let master = MasterKey::generate();
        let a = Crypto::new(&master, true);
        assert_ne!(a.seal(b"", b"x"), a.seal(b"", b"x"));
        let b = Crypto::new(&MasterKey::generate(), true);
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.gear()[..], b.gear()[..]);
        assert_eq!(a.blob_id(b"x"), Crypto::new(&master, false).blob_id(b"x"));
    }

    #[test]
    fn seal_in_place_matches_seal() {
        let crypto = Crypto::new(&MasterKey::generate(), true);
        let mut buf = vec![0u8; crypto.prefix_len()];
        buf.extend_from_slice(b"payload");
        crypto.seal_in_place(b"a", &mut buf);
        let mut out = Vec::new();
        let range = crypto.open_into(b"a", &buf, &mut out).unwrap();
        assert_eq!(&out[range], b"payload");
    }
}
