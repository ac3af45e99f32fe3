//! The event outbox and the audit log.

use std::sync::Mutex;

use jiff::Timestamp;
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use super::{Catalog, CatalogError, CatalogResult, from_micros, opt_from_micros, to_micros};
use crate::domain::{BackupEvent, BackupId, SiteId};

/// Event and audit ids: ULIDs that only increase within this process, so
/// ordering by id is ordering by time of writing.
pub(super) fn next_id() -> String {
    static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut generator = GENERATOR.lock().expect("id generator");
    let generator = generator.get_or_insert_with(ulid::Generator::new);
    generator
        .generate()
        .unwrap_or_else(|_| {
            ulid::Ulid::from_parts(
                Timestamp::now().as_millisecond() as u64,
                crate::domain::random_u128(),
            )
        })
        .to_string()
}

/// An event as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    /// Outbox id (increasing).
    pub id: String,
    /// When it was written.
    pub at: Timestamp,
    /// The event.
    #[serde(flatten)]
    pub event: BackupEvent,
    /// When it was delivered to webhooks, if yet.
    pub delivered_at: Option<Timestamp>,
}

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// It worked.
    Ok,
    /// It failed.
    Failed,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Who (`cli:root`, `token:panel`, `scheduler`).
    pub actor: String,
    /// What (`backup.create`, `backup.restore`, `site.add`, ...).
    pub action: String,
    /// Which site.
    pub site_id: Option<SiteId>,
    /// Which backup.
    pub backup_id: Option<BackupId>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Details for people (never secrets).
    pub detail: Option<String>,
    /// When (set when written).
    pub at: Option<Timestamp>,
}

pub(super) async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    event: &BackupEvent,
) -> CatalogResult<StoredEvent> {
    let stored = StoredEvent {
        id: next_id(),
        at: Timestamp::now(),
        event: event.clone(),
        delivered_at: None,
    };
    sqlx::query("INSERT INTO events (id, kind, site_id, backup_id, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&stored.id)
        .bind(event.kind())
        .bind(event.site_id().to_string())
        .bind(event.backup_id().map(|b| b.to_string()))
        .bind(serde_json::to_string(event).expect("events serialize"))
        .bind(to_micros(stored.at))
        .execute(&mut **tx)
        .await?;
    Ok(stored)
}

pub(super) async fn insert_audit(
    tx: &mut Transaction<'_, Any>,
    entry: &AuditEntry,
) -> CatalogResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, site_id, backup_id, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(next_id())
    .bind(to_micros(entry.at.unwrap_or_else(Timestamp::now)))
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(entry.site_id.map(|s| s.to_string()))
    .bind(entry.backup_id.map(|b| b.to_string()))
    .bind(match entry.outcome {
        AuditOutcome::Ok => "ok",
        AuditOutcome::Failed => "failed",
    })
    .bind(entry.detail.clone())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Catalog {
    /// Append one audit entry on its own.
    pub async fn audit(&self, entry: &AuditEntry) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events, oldest first, after `after` (an event id), of one site or all.
    pub async fn events(
        &self,
        site: Option<SiteId>,
        after: Option<&str>,
        limit: i64,
    ) -> CatalogResult<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT id, payload, created_at, delivered_at FROM events \
             WHERE ($1 IS NULL OR site_id = $1) AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(site.map(|s| s.to_string()))
        .bind(after.map(str::to_string))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get("payload")?;
                Ok(StoredEvent {
                    id: row.try_get("id")?,
                    at: from_micros(row.try_get("created_at")?)?,
                    event: serde_json::from_str(&payload)
                        .map_err(|e| CatalogError::Corrupt(format!("event payload: {e}")))?,
                    delivered_at: opt_from_micros(row.try_get("delivered_at")?)?,
                })
            })
            .collect()
    }

    /// The newest event's id.
    pub async fn last_event_id(&self) -> CatalogResult<Option<String>> {
        let row = sqlx::query("SELECT max(id) AS id FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("id")?)
    }

    /// Audit entries, newest first, of one site or all.
    pub async fn audit_log(
        &self,
        site: Option<SiteId>,
        limit: i64,
    ) -> CatalogResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, site_id, backup_id, outcome, detail FROM audit_log \
             WHERE ($1 IS NULL OR site_id = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(site.map(|s| s.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let site: Option<String> = row.try_get("site_id")?;
                let backup: Option<String> = row.try_get("backup_id")?;
                let outcome: String = row.try_get("outcome")?;
                Ok(AuditEntry {
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    site_id: site
                        .map(|s| s.parse())
                        .transpose()
                        .map_err(|e| CatalogError::Corrupt(format!("{e}")))?,
                    backup_id: backup
                        .map(|b| b.parse())
                        .transpose()
                        .map_err(|e| CatalogError::Corrupt(format!("{e}")))?,
                    outcome: if outcome == "ok" {
                        AuditOutcome::Ok
                    } else {
                        AuditOutcome::Failed
                    },
                    detail: row.try_get("detail")?,
                    at: Some(from_micros(row.try_get("at")?)?),
                })
            })
            .collect()
    }
}
