//! Schedules in the catalog (one per site).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Catalog, CatalogError, CatalogResult, from_micros, parse, to_micros};
use crate::domain::{BackupConfiguration, BackupType, Frequency, Schedule, SiteId};

fn schedule_from_row(row: &AnyRow) -> CatalogResult<Schedule> {
    let backup_type: BackupType = parse(row, "backup_type")?;
    let retention: i64 = row.try_get("retention_days")?;
    let level: i64 = row.try_get("compression_level")?;
    let bad = |e: crate::domain::DomainError| CatalogError::Corrupt(e.to_string());
    let mut configuration =
        BackupConfiguration::of_type(backup_type, retention as u32).map_err(bad)?;
    configuration = if level == 0 {
        configuration.without_compression()
    } else {
        configuration.with_compression(level as i32).map_err(bad)?
    };
    if row.try_get::<i64, _>("require_encryption")? != 0 {
        configuration = configuration.with_encryption();
    }
    Ok(Schedule {
        site_id: parse(row, "site_id")?,
        frequency: parse::<Frequency>(row, "frequency")?,
        configuration,
        created_at: from_micros(row.try_get("created_at")?)?,
    })
}

/// The table's columns, as a literal for `concat!`.
macro_rules! schedule_columns {
    () => {
        "site_id, frequency, backup_type, retention_days, compression_level, require_encryption, created_at"
    };
}

impl Catalog {
    /// Set (or replace) a site's schedule.
    pub async fn set_schedule(&self, schedule: &Schedule) -> CatalogResult<()> {
        let c = &schedule.configuration;
        sqlx::query(concat!("INSERT INTO schedules (", schedule_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (site_id) DO UPDATE SET frequency = excluded.frequency, backup_type = excluded.backup_type, \
             retention_days = excluded.retention_days, compression_level = excluded.compression_level, \
             require_encryption = excluded.require_encryption, created_at = excluded.created_at"))
        .bind(schedule.site_id.to_string())
        .bind(schedule.frequency.to_string())
        .bind(c.backup_type().as_str())
        .bind(i64::from(c.retention_days()))
        .bind(i64::from(c.compression_level()))
        .bind(i64::from(c.requires_encryption()))
        .bind(to_micros(schedule.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A site's schedule.
    pub async fn schedule(&self, site: SiteId) -> CatalogResult<Option<Schedule>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM schedules WHERE site_id = $1"
        ))
        .bind(site.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    /// Every schedule.
    pub async fn list_schedules(&self) -> CatalogResult<Vec<Schedule>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM schedules ORDER BY site_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    /// Every schedule with its site's time zone, scheduler state and
    /// newest completed backup: one query per scheduler pass, however many
    /// sites there are.
    pub async fn schedule_overview(&self) -> CatalogResult<Vec<ScheduleOverview>> {
        let rows = sqlx::query(
            "SELECT s.site_id, s.frequency, s.backup_type, s.retention_days, s.compression_level, \
             s.require_encryption, s.created_at, t.timezone, st.last_slot_at, st.stale_since, \
             (SELECT MAX(b.created_at) FROM backups b WHERE b.site_id = s.site_id AND b.status = 'completed') \
             AS newest_completed \
             FROM schedules s JOIN sites t ON t.id = s.site_id \
             LEFT JOIN schedule_state st ON st.site_id = s.site_id ORDER BY s.site_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ScheduleOverview {
                    schedule: schedule_from_row(row)?,
                    timezone: row.try_get("timezone")?,
                    state: ScheduleState {
                        last_slot_at: super::opt_from_micros(row.try_get("last_slot_at")?)?,
                        stale_since: super::opt_from_micros(row.try_get("stale_since")?)?,
                    },
                    newest_completed: super::opt_from_micros(row.try_get("newest_completed")?)?,
                })
            })
            .collect()
    }

    /// Remove a site's schedule; returns whether there was one.
    pub async fn remove_schedule(&self, site: SiteId) -> CatalogResult<bool> {
        let done = sqlx::query("DELETE FROM schedules WHERE site_id = $1")
            .bind(site.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// What one scheduler pass needs to know about a scheduled site, read for
/// every site in one query.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleOverview {
    /// The schedule.
    pub schedule: Schedule,
    /// The site's time zone.
    pub timezone: String,
    /// What the scheduler last did for it.
    pub state: ScheduleState,
    /// When its newest completed backup was made.
    pub newest_completed: Option<jiff::Timestamp>,
}

/// What the scheduler last did for a site (or for the repository's prune).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleState {
    /// The last slot queued.
    pub last_slot_at: Option<jiff::Timestamp>,
    /// Since when the site has been stale, while it is.
    pub stale_since: Option<jiff::Timestamp>,
}

impl Catalog {
    /// The scheduler's state for `key` (a site id, or `repository`).
    pub async fn schedule_state(&self, key: &str) -> CatalogResult<ScheduleState> {
        let row =
            sqlx::query("SELECT last_slot_at, stale_since FROM schedule_state WHERE site_id = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            None => Ok(ScheduleState::default()),
            Some(row) => Ok(ScheduleState {
                last_slot_at: super::opt_from_micros(row.try_get("last_slot_at")?)?,
                stale_since: super::opt_from_micros(row.try_get("stale_since")?)?,
            }),
        }
    }

    /// Move `key`'s last slot from `previous` to `slot`, only if no one
    /// else did first (several service processes schedule the same sites:
    /// exactly one of them queues each slot), and count the `missed` slots
    /// passed over on the way. Returns whether this call won.
    pub async fn claim_slot(
        &self,
        key: &str,
        previous: Option<jiff::Timestamp>,
        slot: jiff::Timestamp,
        missed: u32,
    ) -> CatalogResult<bool> {
        let done = match previous {
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO schedule_state (site_id, last_slot_at, missed_slots) VALUES ($1, $2, $3)",
                )
                .bind(key)
                .bind(to_micros(slot))
                .bind(i64::from(missed))
                .execute(&self.pool)
                .await;
                match inserted {
                    Ok(done) => done.rows_affected(),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        // A row without a slot yet (only staleness recorded).
                        sqlx::query(
                            "UPDATE schedule_state SET last_slot_at = $1, missed_slots = missed_slots + $2 \
                             WHERE site_id = $3 AND last_slot_at IS NULL",
                        )
                        .bind(to_micros(slot))
                        .bind(i64::from(missed))
                        .bind(key)
                        .execute(&self.pool)
                        .await?
                        .rows_affected()
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(previous) => sqlx::query(
                "UPDATE schedule_state SET last_slot_at = $1, missed_slots = missed_slots + $2 \
                 WHERE site_id = $3 AND last_slot_at = $4",
            )
            .bind(to_micros(slot))
            .bind(i64::from(missed))
            .bind(key)
            .bind(to_micros(previous))
            .execute(&self.pool)
            .await?
            .rows_affected(),
        };
        Ok(done == 1)
    }

    /// Scheduled sites currently marked stale, with their names.
    pub async fn stale_sites(&self) -> CatalogResult<Vec<(SiteId, String)>> {
        let rows = sqlx::query(
            "SELECT t.id AS site_id, t.name AS name FROM schedule_state st \
             JOIN schedules s ON s.site_id = st.site_id JOIN sites t ON t.id = st.site_id \
             WHERE st.stale_since IS NOT NULL ORDER BY t.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((parse(r, "site_id")?, r.try_get("name")?)))
            .collect()
    }

    /// Scheduled slots that passed without a backup starting, by site name
    /// (sites that never missed one are left out).
    pub async fn missed_slots(&self) -> CatalogResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT s.name AS name, st.missed_slots AS missed FROM schedule_state st \
             JOIN sites s ON s.id = st.site_id WHERE st.missed_slots > 0 ORDER BY s.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("missed")?)))
            .collect()
    }

    /// Record since when `key` is stale (`None`: not stale).
    pub async fn set_stale(&self, key: &str, since: Option<jiff::Timestamp>) -> CatalogResult<()> {
        sqlx::query(
            "INSERT INTO schedule_state (site_id, stale_since) VALUES ($1, $2) \
             ON CONFLICT (site_id) DO UPDATE SET stale_since = excluded.stale_since",
        )
        .bind(key)
        .bind(since.map(to_micros))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
