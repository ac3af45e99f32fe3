//! Webhook subscriptions and their delivery log.

use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Catalog, CatalogError, CatalogResult, from_micros, to_micros};
use crate::domain::{Delivery, Webhook};

fn webhook_from_row(row: &AnyRow) -> CatalogResult<Webhook> {
    let events: String = row.try_get("events")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        events: serde_json::from_str(&events)
            .map_err(|e| CatalogError::Corrupt(format!("webhook events: {e}")))?,
        created_at: from_micros(row.try_get("created_at")?)?,
        last_event: row.try_get("last_event")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
    })
}

impl Catalog {
    /// Add a subscription; it receives events written from now on.
    pub async fn insert_webhook(
        &self,
        url: &str,
        secret: &str,
        events: &[String],
        now: Timestamp,
    ) -> CatalogResult<Webhook> {
        let id = super::log::next_id();
        // Start after the newest event: a new subscriber gets what happens next.
        let last = self.last_event_id().await?;
        sqlx::query(
            "INSERT INTO webhooks (id, url, secret, events, created_at, last_event, attempts, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, 0)",
        )
        .bind(&id)
        .bind(url)
        .bind(secret)
        .bind(serde_json::to_string(events).expect("events serialize"))
        .bind(to_micros(now))
        .bind(last)
        .execute(&self.pool)
        .await?;
        Ok(self
            .webhooks()
            .await?
            .into_iter()
            .find(|w| w.id == id)
            .expect("just inserted"))
    }

    /// Every subscription.
    pub async fn webhooks(&self) -> CatalogResult<Vec<Webhook>> {
        let rows = sqlx::query(
            "SELECT id, url, events, created_at, last_event, attempts FROM webhooks ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    /// Remove a subscription; returns whether it existed.
    pub async fn delete_webhook(&self, id: &str) -> CatalogResult<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Take the next subscription due for delivery (lease until `now + lease`);
    /// returns it with its secret.
    pub async fn claim_webhook(
        &self,
        owner: &str,
        now: Timestamp,
        lease: SignedDuration,
    ) -> CatalogResult<Option<(Webhook, String)>> {
        let rows = sqlx::query(
            "SELECT id FROM webhooks WHERE next_attempt_at <= $1 AND (lease_expires_at IS NULL OR lease_expires_at < $1 OR lease_owner = $2) ORDER BY id",
        )
        .bind(to_micros(now))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let taken = sqlx::query(
                "UPDATE webhooks SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3 \
                 AND (lease_expires_at IS NULL OR lease_expires_at < $4 OR lease_owner = $1)",
            )
            .bind(owner)
            .bind(to_micros(now + lease))
            .bind(&id)
            .bind(to_micros(now))
            .execute(&self.pool)
            .await?;
            if taken.rows_affected() == 1 {
                let row = sqlx::query("SELECT id, url, secret, events, created_at, last_event, attempts FROM webhooks WHERE id = $1")
                    .bind(&id)
                    .fetch_one(&self.pool)
                    .await?;
                let secret: String = row.try_get("secret")?;
                return Ok(Some((webhook_from_row(&row)?, secret)));
            }
        }
        Ok(None)
    }

    /// Record one delivery try; on success move the subscription past the
    /// event, on failure schedule the next try at `retry_at`.
    pub async fn record_delivery(
        &self,
        delivery: &Delivery,
        delivered: bool,
        retry_at: Timestamp,
    ) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, attempt, status_code, error, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(super::log::next_id())
        .bind(&delivery.webhook_id)
        .bind(&delivery.event_id)
        .bind(i64::from(delivery.attempt))
        .bind(delivery.status_code.map(i64::from))
        .bind(delivery.error.clone())
        .bind(to_micros(delivery.at))
        .execute(&mut *tx)
        .await?;
        let update = if delivered {
            sqlx::query("UPDATE webhooks SET last_event = $1, attempts = 0, next_attempt_at = 0 WHERE id = $2")
                .bind(&delivery.event_id)
                .bind(&delivery.webhook_id)
        } else {
            sqlx::query(
                "UPDATE webhooks SET attempts = attempts + 1, next_attempt_at = $1 WHERE id = $2",
            )
            .bind(to_micros(retry_at))
            .bind(&delivery.webhook_id)
        };
        update.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Move a subscription past an event it does not want.
    pub async fn skip_event(&self, webhook: &str, event: &str) -> CatalogResult<()> {
        sqlx::query("UPDATE webhooks SET last_event = $1 WHERE id = $2")
            .bind(event)
            .bind(webhook)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forget delivery attempts logged before `before`. Returns how many
    /// went.
    pub async fn purge_deliveries(&self, before: Timestamp) -> CatalogResult<u64> {
        let done = sqlx::query("DELETE FROM webhook_deliveries WHERE at < $1")
            .bind(to_micros(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// A subscription's delivery log, newest first.
    pub async fn deliveries(&self, webhook: &str, limit: i64) -> CatalogResult<Vec<Delivery>> {
        let rows = sqlx::query(
            "SELECT webhook_id, event_id, attempt, status_code, error, at FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(webhook)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Delivery {
                    webhook_id: row.try_get("webhook_id")?,
                    event_id: row.try_get("event_id")?,
                    attempt: row.try_get::<i64, _>("attempt")? as u32,
                    status_code: row
                        .try_get::<Option<i64>, _>("status_code")?
                        .map(|c| c as u16),
                    error: row.try_get("error")?,
                    at: from_micros(row.try_get("at")?)?,
                })
            })
            .collect()
    }
}
