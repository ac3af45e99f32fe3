//! Aggregates for metrics: computed in the database, not by loading rows.

use jiff::Timestamp;
use sqlx::Row;

use super::{Catalog, CatalogResult, from_micros};

impl Catalog {
    /// Backups per status.
    pub async fn backup_counts(&self) -> CatalogResult<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, count(*) AS n FROM backups GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    /// Jobs per status.
    pub async fn job_counts(&self) -> CatalogResult<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, count(*) AS n FROM jobs GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    /// Logical and added bytes of all completed backups.
    pub async fn backup_bytes(&self) -> CatalogResult<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COALESCE(sum(logical_bytes), 0) AS logical, COALESCE(sum(added_bytes), 0) AS added FROM backups WHERE status = 'completed'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("logical")?, row.try_get("added")?))
    }

    /// Each site's newest completed backup (site name, time).
    pub async fn last_successes(&self) -> CatalogResult<Vec<(String, Timestamp)>> {
        let rows = sqlx::query(
            "SELECT s.name AS name, max(b.completed_at) AS at FROM backups b JOIN sites s ON s.id = b.site_id \
             WHERE b.status = 'completed' GROUP BY s.name ORDER BY s.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, from_micros(r.try_get("at")?)?)))
            .collect()
    }
}
