//! 256-bit identifiers of blobs and storage objects.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A 32-byte identifier, written as 64 lowercase hex digits.
///
/// Blob ids are keyed BLAKE3 hashes of the blob's plaintext; object ids
/// (packs, index files, snapshots, key slots) are plain BLAKE3 hashes of the
/// object's stored bytes, so anyone can check an object against its name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id([u8; 32]);

impl Id {
    /// Length of an id in bytes.
    pub const LEN: usize = 32;

    /// Wrap raw bytes.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Id(bytes)
    }

    /// The unkeyed BLAKE3 hash of `bytes`: the name of a storage object.
    pub fn of_object(bytes: &[u8]) -> Self {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// A fresh random id (lock names, repository ids).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        crate::crypto::fill_random(&mut bytes);
        Id(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Full hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, for people.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Parse 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| Error::InvalidInput(format!("{s:?} is not a 64-digit hex id")))?;
        Ok(Id(bytes))
    }

    /// Read an id from the first 32 bytes of `bytes`.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.get(..32).map(|b| Id(b.try_into().expect("32 bytes")))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Id::from_hex(s)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Id::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = Id::of_object(b"hello");
        assert_eq!(Id::from_hex(&id.to_hex()).unwrap(), id);
        assert_eq!(id.short().len(), 8);
        assert!(Id::from_hex("abc").is_err());
        assert!(Id::from_hex(&"zz".repeat(32)).is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
    }
}
