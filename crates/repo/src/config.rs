//! The repository's `config` object: the parameters every writer must agree on.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// Format version written by this code, and the highest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Chunker sizes in bytes. Chosen by measurement on the site benchmark
/// corpus; see `docs/FORMAT.md` ("Chunking") for the numbers and the reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// No cut before this many bytes.
    pub min_size: u32,
    /// Target average chunk size.
    pub avg_size: u32,
    /// A cut is forced at this size.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_size: 512 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Reject sizes FastCDC cannot work with.
    pub fn validate(&self) -> Result<()> {
        let ok = self.min_size >= 64
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.avg_size.is_power_of_two()
            && self.max_size <= 64 * 1024 * 1024;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "invalid chunker sizes {self:?}: need 64 <= min <= avg <= max <= 64 MiB with avg a power of two"
            )))
        }
    }
}

/// Which cipher seals the repository's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encryption {
    /// XChaCha20-Poly1305 with random 192-bit nonces.
    #[serde(rename = "xchacha20-poly1305")]
    XChaCha20Poly1305,
    /// No encryption (explicitly requested at init).
    None,
}

/// The `config` object, stored as plaintext JSON. It holds no secret; it is
/// written once by `init` and never changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Always `"chom-repo"`: tells a repository from other data.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Random repository id; key slots are bound to it.
    pub id: Id,
    /// When the repository was created.
    pub created: Timestamp,
    /// Cipher of the repository.
    pub encryption: Encryption,
    /// Content-defined chunking sizes.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// Default zstd level of new blobs (0 = store uncompressed).
    pub compression_level: i32,
}

/// Options of a new repository.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InitOptions {
    /// Encrypt (the default). `false` only for `--no-encryption`.
    pub encrypt: bool,
    /// Chunker sizes.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes (default 16 MiB).
    pub pack_size: u32,
    /// Default compression level (default 3).
    pub compression_level: i32,
    /// Argon2id parameters of the first key slot.
    pub kdf: crate::keys::KdfParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            encrypt: true,
            chunker: ChunkerParams::default(),
            pack_size: 16 * 1024 * 1024,
            compression_level: 3,
            kdf: crate::keys::KdfParams::default(),
        }
    }
}

impl Config {
    /// A fresh config from init options.
    pub fn new(opts: &InitOptions) -> Result<Self> {
        opts.chunker.validate()?;
        if !(1024 * 1024..=1024 * 1024 * 1024).contains(&opts.pack_size) {
            return Err(Error::InvalidInput(format!(
                "pack size {} is out of range: choose between 1 MiB and 1 GiB",
                opts.pack_size
            )));
        }
        validate_compression_level(opts.compression_level)?;
        Ok(Config {
            format: "chom-repo".into(),
            version: FORMAT_VERSION,
            id: Id::random(),
            created: Timestamp::now(),
            encryption: if opts.encrypt {
                Encryption::XChaCha20Poly1305
            } else {
                Encryption::None
            },
            chunker: opts.chunker,
            pack_size: opts.pack_size,
            compression_level: opts.compression_level,
        })
    }

    /// Parse and validate a stored config.
    pub fn parse(bytes: &[u8], location: &str) -> Result<Self> {
        let config: Config = serde_json::from_slice(bytes).map_err(|_| Error::NotARepository {
            location: location.to_string(),
        })?;
        if config.format != "chom-repo" {
            return Err(Error::NotARepository {
                location: location.to_string(),
            });
        }
        if config.version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: config.version,
                supported: FORMAT_VERSION,
            });
        }
        config.chunker.validate()?;
        Ok(config)
    }

    /// Whether objects are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.encryption == Encryption::XChaCha20Poly1305
    }
}

/// Check a zstd level: 0 (no compression) or 1..=22.
pub fn validate_compression_level(level: i32) -> Result<()> {
    if (0..=22).contains(&level) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "compression level {level} is out of range: use 0 (none) or 1 to 22"
        )))
    }
}
