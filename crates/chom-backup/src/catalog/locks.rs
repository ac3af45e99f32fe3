//! Site locks: one backup or restore per site at a time, across processes
//! and (with PostgreSQL) machines.
//!
//! A lock is a row keyed by site. Its holder refreshes `heartbeat_at` while
//! it works. A lock is stale when its holder's process is gone (same host)
//! or its heartbeat is older than [`STALE_AFTER`]; a stale lock is taken over.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Catalog, CatalogError, CatalogResult, from_micros, to_micros};
use crate::domain::{BackupId, SiteId};

/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(2 * 60);

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
}

impl LockHolder {
    /// This process.
    pub fn this_process() -> Self {
        LockHolder {
            host: chom_repo::hostname(),
            pid: std::process::id(),
        }
    }
}

/// A site lock as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteLock {
    /// The site.
    pub site_id: SiteId,
    /// `backup`, `restore` or `retention`.
    pub operation: String,
    /// The backup made or restored.
    pub backup_id: Option<BackupId>,
    /// Who holds it.
    pub holder: LockHolder,
    /// When it was taken.
    pub acquired_at: Timestamp,
    /// Last sign of life.
    pub heartbeat_at: Timestamp,
}

impl SiteLock {
    /// Whether its holder is gone: its process is dead (same host) or it
    /// has been silent longer than [`STALE_AFTER`].
    pub fn is_stale(&self, now: Timestamp) -> bool {
        let silent =
            now.duration_since(self.heartbeat_at).as_secs_f64() > STALE_AFTER.as_secs_f64();
        let dead =
            self.holder.host == chom_repo::hostname() && !chom_repo::process_alive(self.holder.pid);
        silent || dead
    }
}

fn lock_from_row(row: &AnyRow) -> CatalogResult<SiteLock> {
    let backup: Option<String> = row.try_get("backup_id")?;
    let site: String = row.try_get("site_id")?;
    Ok(SiteLock {
        site_id: site
            .parse()
            .map_err(|e| CatalogError::Corrupt(format!("{e}")))?,
        operation: row.try_get("operation")?,
        backup_id: backup
            .map(|b| b.parse())
            .transpose()
            .map_err(|e| CatalogError::Corrupt(format!("{e}")))?,
        holder: LockHolder {
            host: row.try_get("holder_host")?,
            pid: row.try_get::<i64, _>("holder_pid")? as u32,
        },
        acquired_at: from_micros(row.try_get("acquired_at")?)?,
        heartbeat_at: from_micros(row.try_get("heartbeat_at")?)?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Catalog {
    /// Take the site's lock for `operation`. Returns the current holder's
    /// lock instead when the site is busy.
    pub async fn try_lock_site(
        &self,
        site: SiteId,
        operation: &str,
        backup: Option<BackupId>,
    ) -> CatalogResult<Result<(), SiteLock>> {
        let me = LockHolder::this_process();
        for _ in 0..2 {
            let now = to_micros(Timestamp::now());
            let inserted = sqlx::query(
                "INSERT INTO site_locks (site_id, operation, backup_id, holder_host, holder_pid, acquired_at, heartbeat_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(site.to_string())
            .bind(operation)
            .bind(backup.map(|b| b.to_string()))
            .bind(&me.host)
            .bind(i64::from(me.pid))
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await;
            match inserted {
                Ok(_) => return Ok(Ok(())),
                Err(e) if is_unique_violation(&e) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(current) = self.site_lock(site).await? else {
                continue;
            };
            if !current.is_stale(Timestamp::now()) {
                return Ok(Err(current));
            }
            // Take over a stale lock: delete exactly the stale row, then retry.
            sqlx::query("DELETE FROM site_locks WHERE site_id = $1 AND holder_host = $2 AND holder_pid = $3 AND acquired_at = $4")
                .bind(site.to_string())
                .bind(&current.holder.host)
                .bind(i64::from(current.holder.pid))
                .bind(to_micros(current.acquired_at))
                .execute(&self.pool)
                .await?;
        }
        match self.site_lock(site).await? {
            Some(current) => Ok(Err(current)),
            None => Err(CatalogError::Corrupt(
                "site lock vanished while taking it over".into(),
            )),
        }
    }

    /// The site's lock, if held.
    pub async fn site_lock(&self, site: SiteId) -> CatalogResult<Option<SiteLock>> {
        let row = sqlx::query(
            "SELECT site_id, operation, backup_id, holder_host, holder_pid, acquired_at, heartbeat_at FROM site_locks WHERE site_id = $1",
        )
        .bind(site.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(lock_from_row).transpose()
    }

    /// Live locks of restores: the backups they are restoring must not be
    /// deleted meanwhile.
    pub async fn backups_being_restored(&self) -> CatalogResult<Vec<BackupId>> {
        let rows = sqlx::query(
            "SELECT site_id, operation, backup_id, holder_host, holder_pid, acquired_at, heartbeat_at FROM site_locks WHERE operation = 'restore'",
        )
        .fetch_all(&self.pool)
        .await?;
        let now = Timestamp::now();
        let mut out = Vec::new();
        for row in &rows {
            let lock = lock_from_row(row)?;
            if !lock.is_stale(now)
                && let Some(b) = lock.backup_id
            {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Refresh our lock's heartbeat.
    pub async fn heartbeat_site(&self, site: SiteId) -> CatalogResult<()> {
        let me = LockHolder::this_process();
        sqlx::query("UPDATE site_locks SET heartbeat_at = $1 WHERE site_id = $2 AND holder_host = $3 AND holder_pid = $4")
            .bind(to_micros(Timestamp::now()))
            .bind(site.to_string())
            .bind(&me.host)
            .bind(i64::from(me.pid))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Release our lock on the site.
    pub async fn unlock_site(&self, site: SiteId) -> CatalogResult<()> {
        let me = LockHolder::this_process();
        sqlx::query(
            "DELETE FROM site_locks WHERE site_id = $1 AND holder_host = $2 AND holder_pid = $3",
        )
        .bind(site.to_string())
        .bind(&me.host)
        .bind(i64::from(me.pid))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
