//! API tokens in the catalog (hashes only).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Catalog, CatalogError, CatalogResult, from_micros, opt_from_micros, to_micros};
use crate::domain::ApiToken;

fn token_from_row(row: &AnyRow) -> CatalogResult<ApiToken> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiToken {
        name: row.try_get("name")?,
        admin: row.try_get::<i64, _>("admin")? != 0,
        scopes: serde_json::from_str(&scopes)
            .map_err(|e| CatalogError::Corrupt(format!("token scopes: {e}")))?,
        created_at: from_micros(row.try_get("created_at")?)?,
        revoked_at: opt_from_micros(row.try_get("revoked_at")?)?,
    })
}

impl Catalog {
    /// Store a token under the hash of its secret.
    pub async fn insert_token(&self, token: &ApiToken, hash: &str) -> CatalogResult<()> {
        sqlx::query("INSERT INTO api_tokens (name, token_hash, admin, scopes, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&token.name)
            .bind(hash)
            .bind(i64::from(token.admin))
            .bind(serde_json::to_string(&token.scopes).expect("scopes serialize"))
            .bind(to_micros(token.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The live (not revoked) token with this secret hash.
    pub async fn token_by_hash(&self, hash: &str) -> CatalogResult<Option<ApiToken>> {
        let row = sqlx::query(
            "SELECT name, admin, scopes, created_at, revoked_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Every token, by name.
    pub async fn list_tokens(&self) -> CatalogResult<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT name, admin, scopes, created_at, revoked_at FROM api_tokens ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revoke a token; returns whether a live one was found.
    pub async fn revoke_token(&self, name: &str, now: jiff::Timestamp) -> CatalogResult<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(to_micros(now))
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
