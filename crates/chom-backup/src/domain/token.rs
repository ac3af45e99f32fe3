//! API tokens: admin, or scoped to sites with permissions per site.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{DomainError, SiteId};

/// What a scoped token may do on a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// See the site, its backups, jobs, events, statistics.
    View,
    /// Create backups and manage the schedule.
    Backup,
    /// Restore backups into the site.
    Restore,
    /// Download (export) backups.
    Download,
    /// Delete backups and apply retention.
    Delete,
}

impl std::str::FromStr for Permission {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s {
            "view" => Ok(Permission::View),
            "backup" => Ok(Permission::Backup),
            "restore" => Ok(Permission::Restore),
            "download" => Ok(Permission::Download),
            "delete" => Ok(Permission::Delete),
            other => Err(DomainError::new(
                "allow",
                format!(
                    "unknown permission {other:?}: use view, backup, restore, download or delete"
                ),
            )),
        }
    }
}

/// A token's rights on one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteScope {
    /// The site.
    pub site_id: SiteId,
    /// What is allowed there (`view` is implied by any other).
    pub permissions: Vec<Permission>,
}

/// An API token as stored (its secret is not: only a hash of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Unique name, shown in the audit log.
    pub name: String,
    /// Everything allowed, on every site, plus site administration.
    pub admin: bool,
    /// Per-site rights of a scoped token.
    pub scopes: Vec<SiteScope>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

impl ApiToken {
    /// Whether the token may do `permission` on `site`.
    pub fn allows(&self, site: SiteId, permission: Permission) -> bool {
        self.admin
            || self.scopes.iter().any(|s| {
                s.site_id == site
                    && (permission == Permission::View || s.permissions.contains(&permission))
            })
    }

    /// Whether the token sees `site` at all.
    pub fn sees(&self, site: SiteId) -> bool {
        self.allows(site, Permission::View)
    }

    /// The sites a scoped token covers (`None` for admin: all).
    pub fn site_ids(&self) -> Option<Vec<SiteId>> {
        (!self.admin).then(|| self.scopes.iter().map(|s| s.site_id).collect())
    }
}

/// The stored form of a secret: BLAKE3 of it, hex. A fast hash is right
/// here: secrets are 256 random bits, not passwords.
pub fn token_hash(secret: &str) -> String {
    blake3_hex(secret.as_bytes())
}

fn blake3_hex(data: &[u8]) -> String {
    chom_repo::Id::of_object(data).to_hex()
}

/// A new random secret (`chom_` and 64 hex digits).
pub fn new_token_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("system random number generator");
    format!("chom_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_tokens_see_only_their_sites() {
        let a = SiteId::new(Timestamp::now());
        let b = SiteId::new(Timestamp::now());
        let t = ApiToken {
            name: "panel".into(),
            admin: false,
            scopes: vec![SiteScope {
                site_id: a,
                permissions: vec![Permission::Backup],
            }],
            created_at: Timestamp::now(),
            revoked_at: None,
        };
        assert!(t.sees(a) && t.allows(a, Permission::Backup));
        assert!(!t.allows(a, Permission::Restore) && !t.sees(b));
        let secret = new_token_secret();
        assert_eq!(secret.len(), 69);
        assert_eq!(token_hash(&secret), token_hash(&secret));
        assert_ne!(token_hash(&secret), token_hash(&new_token_secret()));
        assert!("admin".parse::<Permission>().is_err());
    }
}
