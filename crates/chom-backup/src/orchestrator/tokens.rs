//! API tokens: created with a secret shown once, stored as a hash.

use crate::catalog::AuditOutcome;
use crate::domain::{ApiToken, SiteScope, new_token_secret, token_hash, validate_site_name};
use crate::error::{Error, Result};

use super::BackupOrchestrator;

impl BackupOrchestrator {
    /// Create a token; returns it and its secret (not stored, shown once).
    pub async fn create_token(
        &self,
        name: &str,
        admin: bool,
        scopes: Vec<SiteScope>,
    ) -> Result<(ApiToken, String)> {
        validate_site_name(name).map_err(|e| {
            crate::domain::DomainError::new("name", e.message.replace("site name", "token name"))
        })?;
        if !admin && scopes.is_empty() {
            return Err(crate::domain::DomainError::new(
                "site",
                "a token is either --admin or scoped to at least one --site",
            )
            .into());
        }
        if self
            .catalog
            .list_tokens()
            .await?
            .iter()
            .any(|t| t.name == name)
        {
            return Err(Error::Conflict(format!(
                "a token named {name:?} exists (revoked tokens keep their name)"
            )));
        }
        let token = ApiToken {
            name: name.to_string(),
            admin,
            scopes,
            created_at: self.now(),
            revoked_at: None,
        };
        let secret = new_token_secret();
        self.catalog
            .insert_token(&token, &token_hash(&secret))
            .await?;
        let detail = Some(if admin {
            format!("admin token {name}")
        } else {
            format!("token {name} for {} sites", token.scopes.len())
        });
        self.catalog
            .audit(&self.audit("token.create", None, None, AuditOutcome::Ok, detail))
            .await?;
        Ok((token, secret))
    }

    /// Every token (never their secrets).
    pub async fn tokens(&self) -> Result<Vec<ApiToken>> {
        Ok(self.catalog.list_tokens().await?)
    }

    /// Revoke a token at once.
    pub async fn revoke_token(&self, name: &str) -> Result<()> {
        if !self.catalog.revoke_token(name, self.now()).await? {
            return Err(Error::Conflict(format!("no live token named {name:?}")));
        }
        self.catalog
            .audit(&self.audit(
                "token.revoke",
                None,
                None,
                AuditOutcome::Ok,
                Some(name.to_string()),
            ))
            .await?;
        Ok(())
    }
}
