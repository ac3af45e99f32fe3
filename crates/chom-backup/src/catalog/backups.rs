//! Backup records in the catalog.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Catalog, CatalogResult, from_micros, opt_from_micros, parse, to_micros};
use crate::domain::{Backup, BackupConfiguration, BackupId, BackupType, SiteId};

/// The table's columns, as a literal for `concat!`.
macro_rules! backup_columns {
    () => {
        "id, site_id, backup_type, status, trigger_kind, retention_days, compression_level, \
     require_encryption, encrypted, snapshot_id, logical_bytes, added_bytes, file_count, checksum, \
     created_at, started_at, completed_at, expires_at, error"
    };
}

fn backup_from_row(row: &AnyRow) -> CatalogResult<Backup> {
    let backup_type: BackupType = parse(row, "backup_type")?;
    let retention: i64 = row.try_get("retention_days")?;
    let level: i64 = row.try_get("compression_level")?;
    // Stored configurations were valid when written; rebuild without
    // re-validating so a record outside today's limits still loads.
    let mut configuration =
        BackupConfiguration::of_type(backup_type, retention.clamp(1, 365) as u32)
            .expect("clamped retention is valid");
    configuration = if level == 0 {
        configuration.without_compression()
    } else {
        configuration
            .with_compression(level.clamp(1, 22) as i32)
            .expect("clamped level is valid")
    };
    if row.try_get::<i64, _>("require_encryption")? != 0 {
        configuration = configuration.with_encryption();
    }
    Ok(Backup {
        id: parse(row, "id")?,
        site_id: parse(row, "site_id")?,
        configuration,
        status: parse(row, "status")?,
        trigger: parse(row, "trigger_kind")?,
        snapshot_id: row.try_get("snapshot_id")?,
        logical_bytes: row.try_get::<i64, _>("logical_bytes")? as u64,
        added_bytes: row.try_get::<i64, _>("added_bytes")? as u64,
        file_count: row.try_get::<i64, _>("file_count")? as u64,
        checksum: row.try_get("checksum")?,
        encrypted: row.try_get::<i64, _>("encrypted")? != 0,
        created_at: from_micros(row.try_get("created_at")?)?,
        started_at: opt_from_micros(row.try_get("started_at")?)?,
        completed_at: opt_from_micros(row.try_get("completed_at")?)?,
        expires_at: from_micros(row.try_get("expires_at")?)?,
        error: row.try_get("error")?,
    })
}

pub(super) async fn upsert(tx: &mut Transaction<'_, Any>, b: &Backup) -> CatalogResult<()> {
    sqlx::query(concat!("INSERT INTO backups (", backup_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, snapshot_id = excluded.snapshot_id, \
         logical_bytes = excluded.logical_bytes, added_bytes = excluded.added_bytes, file_count = excluded.file_count, \
         checksum = excluded.checksum, encrypted = excluded.encrypted, started_at = excluded.started_at, \
         completed_at = excluded.completed_at, error = excluded.error"))
    .bind(b.id.to_string())
    .bind(b.site_id.to_string())
    .bind(b.backup_type().as_str())
    .bind(b.status.as_str())
    .bind(b.trigger.as_str())
    .bind(i64::from(b.configuration.retention_days()))
    .bind(i64::from(b.configuration.compression_level()))
    .bind(i64::from(b.configuration.requires_encryption()))
    .bind(i64::from(b.encrypted))
    .bind(b.snapshot_id.clone())
    .bind(b.logical_bytes as i64)
    .bind(b.added_bytes as i64)
    .bind(b.file_count as i64)
    .bind(b.checksum.clone())
    .bind(to_micros(b.created_at))
    .bind(b.started_at.map(to_micros))
    .bind(b.completed_at.map(to_micros))
    .bind(to_micros(b.expires_at))
    .bind(b.error.clone())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn delete(tx: &mut Transaction<'_, Any>, id: &BackupId) -> CatalogResult<()> {
    sqlx::query("DELETE FROM backups WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Catalog {
    /// A backup by id.
    pub async fn backup(&self, id: BackupId) -> CatalogResult<Option<Backup>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            backup_columns!(),
            " FROM backups WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(backup_from_row).transpose()
    }

    /// Backups, newest first; of one site or all.
    pub async fn list_backups(&self, site: Option<SiteId>) -> CatalogResult<Vec<Backup>> {
        let rows = match site {
            Some(site) => {
                sqlx::query(concat!(
                    "SELECT ",
                    backup_columns!(),
                    " FROM backups WHERE site_id = $1 ORDER BY created_at DESC, id DESC"
                ))
                .bind(site.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    backup_columns!(),
                    " FROM backups ORDER BY created_at DESC, id DESC"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(backup_from_row).collect()
    }

    /// Backups still pending or running, oldest first: after a crash,
    /// the ones nobody is making any more.
    pub async fn unfinished_backups(&self) -> CatalogResult<Vec<Backup>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            backup_columns!(),
            " FROM backups WHERE status IN ('pending', 'running') ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(backup_from_row).collect()
    }

    /// Each site's newest completed backup (what a scheduled verification
    /// checks), in one query.
    pub async fn newest_completed_backups(&self) -> CatalogResult<Vec<Backup>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            backup_columns!(),
            " FROM backups b WHERE status = 'completed' AND created_at = \
             (SELECT MAX(n.created_at) FROM backups n WHERE n.site_id = b.site_id AND n.status = 'completed') \
             ORDER BY site_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(backup_from_row).collect()
    }
}
