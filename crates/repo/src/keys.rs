//! Password key slots: the master key wrapped under keys derived from
//! passwords with Argon2id.
//!
//! Each slot is one object `keys/<id>` (JSON, plaintext; the id is the BLAKE3
//! hash of its bytes). Several slots let several people or machines open the
//! same repository with different passwords, and let a password be changed
//! (add the new slot, then remove the old one) without touching any data.

use argon2::{Algorithm, Argon2, Params, Version};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{self, MasterKey};
use crate::error::{Error, Result};
use crate::id::Id;

/// Argon2id cost parameters, stored in each slot so they can be raised for
/// new slots without breaking old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 19 MiB, 2 passes, 1 lane: the OWASP baseline for Argon2id. It costs
    /// about 50 ms here, paid once per command, and keeps the memory peak of
    /// short commands low.
    fn default() -> Self {
        KdfParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// How a slot protects the master key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kdf", rename_all = "lowercase")]
pub enum SlotProtection {
    /// Wrapped under Argon2id(password, salt).
    Argon2id {
        /// Cost parameters.
        #[serde(flatten)]
        params: KdfParams,
        /// 16 random bytes, hex.
        salt: String,
        /// `nonce || XChaCha20-Poly1305(master key) || tag`, hex.
        wrapped: String,
    },
    /// Stored in the clear: only in repositories created with `--no-encryption`.
    None {
        /// The master key, hex.
        master_key: String,
    },
}

/// One key slot as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySlot {
    /// When the slot was created.
    pub created: Timestamp,
    /// Host that created it.
    pub host: String,
    /// User that created it.
    pub username: String,
    /// The protected master key.
    #[serde(flatten)]
    pub protection: SlotProtection,
}

/// Associated data binding a slot to its repository, so a slot copied from
/// another repository does not open here.
fn slot_aad(repo_id: &Id) -> Vec<u8> {
    let mut aad = b"chom-repo key slot ".to_vec();
    aad.extend_from_slice(repo_id.as_bytes());
    aad
}

fn derive_kek(password: &str, salt: &[u8], params: KdfParams) -> Result<Zeroizing<[u8; 32]>> {
    let argon_params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| Error::InvalidInput(format!("invalid Argon2id parameters {params:?}: {e}")))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut kek = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password.as_bytes(), salt, kek.as_mut())
        .map_err(|e| Error::InvalidInput(format!("cannot derive a key from the password: {e}")))?;
    Ok(kek)
}

impl KeySlot {
    /// Wrap `master` under `password`.
    pub fn protect(
        master: &MasterKey,
        repo_id: &Id,
        password: &str,
        params: KdfParams,
    ) -> Result<Self> {
        if password.is_empty() {
            return Err(Error::InvalidInput(
                "the password is empty: choose a non-empty password, or create the repository with --no-encryption".into(),
            ));
        }
        let mut salt = [0u8; 16];
        crypto::fill_random(&mut salt);
        let kek = derive_kek(password, &salt, params)?;
        let wrapped = crypto::seal_with(
            &crypto::aead_key(&kek),
            &slot_aad(repo_id),
            master.as_bytes(),
        );
        Ok(Self::now(SlotProtection::Argon2id {
            params,
            salt: hex::encode(salt),
            wrapped: hex::encode(wrapped),
        }))
    }

    /// A slot holding the master key in the clear (unencrypted repositories).
    pub fn plain(master: &MasterKey) -> Self {
        Self::now(SlotProtection::None {
            master_key: hex::encode(master.as_bytes()),
        })
    }

    fn now(protection: SlotProtection) -> Self {
        KeySlot {
            created: Timestamp::now(),
            host: crate::lock::hostname(),
            username: crate::lock::username(),
            protection,
        }
    }

    /// Try to unwrap the master key; `Ok(None)` when the password does not fit.
    pub fn unlock(&self, repo_id: &Id, password: Option<&str>) -> Result<Option<MasterKey>> {
        match &self.protection {
            SlotProtection::None { master_key } => Ok(Some(decode_key(master_key)?)),
            SlotProtection::Argon2id {
                params,
                salt,
                wrapped,
            } => {
                let Some(password) = password else {
                    return Ok(None);
                };
                let salt =
                    hex::decode(salt).map_err(|_| Error::damaged("key slot", "salt is not hex"))?;
                let mut wrapped = hex::decode(wrapped)
                    .map_err(|_| Error::damaged("key slot", "wrapped key is not hex"))?;
                let kek = derive_kek(password, &salt, *params)?;
                match crypto::open_with(&crypto::aead_key(&kek), &slot_aad(repo_id), &mut wrapped) {
                    Ok(range) if range.len() == 32 => {
                        let bytes: [u8; 32] = wrapped[range].try_into().expect("32 bytes");
                        Ok(Some(MasterKey::from_bytes(bytes)))
                    }
                    Ok(_) => Err(Error::damaged(
                        "key slot",
                        "wrapped key has the wrong length",
                    )),
                    Err(_) => Ok(None),
                }
            }
        }
    }

    /// Whether this slot needs a password.
    pub fn is_protected(&self) -> bool {
        matches!(self.protection, SlotProtection::Argon2id { .. })
    }
}

fn decode_key(hex_key: &str) -> Result<MasterKey> {
    let bytes = Zeroizing::new(
        hex::decode(hex_key).map_err(|_| Error::damaged("key slot", "master key is not hex"))?,
    );
    let bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::damaged("key slot", "master key has the wrong length"))?;
    Ok(MasterKey::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn protect_unlock_and_wrong_password() {
        let master = MasterKey::generate();
        let repo = Id::random();
        let slot = KeySlot::protect(&master, &repo, "correct horse", fast()).unwrap();
        let json = serde_json::to_string(&slot).unwrap();
        assert!(!json.contains(&hex::encode(master.as_bytes())));
        let slot: KeySlot = serde_json::from_str(&json).unwrap();
        let opened = slot.unlock(&repo, Some("correct horse")).unwrap().unwrap();
        assert_eq!(opened.as_bytes(), master.as_bytes());
        assert!(slot.unlock(&repo, Some("wrong")).unwrap().is_none());
        assert!(slot.unlock(&repo, None).unwrap().is_none());
        assert!(
            slot.unlock(&Id::random(), Some("correct horse"))
                .unwrap()
                .is_none(),
            "slot bound to its repository"
        );
        assert!(KeySlot::protect(&master, &repo, "", fast()).is_err());
    }
}
