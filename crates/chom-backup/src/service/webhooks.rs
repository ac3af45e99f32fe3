//! Webhook delivery: every event of the outbox, in order, to each
//! subscription that wants it, signed, retried with backoff until a 2xx.
//!
//! Signature: header `X-Chom-Signature: sha256=HEX` where HEX is
//! HMAC-SHA256 with the subscription's secret over `TIMESTAMP.BODY`, and
//! `X-Chom-Timestamp` carries TIMESTAMP (Unix seconds). A receiver checks
//! both and rejects old timestamps (replays).

use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};

use super::Service;
use crate::catalog::{StoredEvent, backoff};
use crate::domain::{Delivery, Webhook};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The signature of a delivery body at a time.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Service {
    /// Deliver pending events to every subscription, forever.
    pub(super) async fn webhook_loop(self: Arc<Self>) {
        let owner = format!("{}:{}", chom_repo::hostname(), std::process::id());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        while !self.stopping() {
            let mut worked = false;
            loop {
                let claimed = self
                    .orchestrator
                    .catalog()
                    .claim_webhook(&owner, self.now(), SignedDuration::from_secs(60))
                    .await;
                match claimed {
                    Ok(Some((hook, secret))) => {
                        worked |= self.deliver_pending(&client, &hook, &secret).await;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!("webhooks: {e}");
                        break;
                    }
                }
            }
            if !worked {
                self.idle(Duration::from_millis(500)).await;
            }
        }
    }

    /// Deliver this subscription's pending events in order; stop at the
    /// first failure (the next try waits for its backoff). Returns whether
    /// anything was attempted.
    async fn deliver_pending(
        &self,
        client: &reqwest::Client,
        hook: &Webhook,
        secret: &str,
    ) -> bool {
        let catalog = self.orchestrator.catalog();
        let events = match catalog.events(None, hook.last_event.as_deref(), 100).await {
            Ok(events) => events,
            Err(e) => {
                tracing::error!("webhook {}: cannot read events: {e}", hook.id);
                return false;
            }
        };
        let mut attempts = hook.attempts;
        for event in &events {
            if !hook.events.is_empty() && !hook.events.iter().any(|k| k == event.event.kind()) {
                if let Err(e) = catalog.skip_event(&hook.id, &event.id).await {
                    tracing::error!("webhook {}: {e}", hook.id);
                    return true;
                }
                continue;
            }
            let (status, error) = post(client, hook, secret, event).await;
            let ok = status.is_some_and(|s| (200..300).contains(&s));
            attempts += 1;
            let delivery = Delivery {
                webhook_id: hook.id.clone(),
                event_id: event.id.clone(),
                attempt: attempts,
                status_code: status,
                error,
                at: Timestamp::now(),
            };
            let retry_at =
                Timestamp::now() + backoff(attempts).min(SignedDuration::from_secs(300)) / 15;
            if let Err(e) = catalog.record_delivery(&delivery, ok, retry_at).await {
                tracing::error!("webhook {}: cannot record a delivery: {e}", hook.id);
                return true;
            }
            if !ok {
                return true;
            }
            attempts = 0;
        }
        !events.is_empty()
    }
}

async fn post(
    client: &reqwest::Client,
    hook: &Webhook,
    secret: &str,
    event: &StoredEvent,
) -> (Option<u16>, Option<String>) {
    let body = serde_json::to_vec(event).expect("events serialize");
    let timestamp = Timestamp::now().as_second();
    let response = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("x-chom-event", event.event.kind())
        .header("x-chom-delivery", &event.id)
        .header("x-chom-timestamp", timestamp.to_string())
        .header("x-chom-signature", sign(secret, timestamp, &body))
        .body(body)
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
        Ok(r) => (
            Some(r.status().as_u16()),
            Some(format!("the receiver answered {}", r.status())),
        ),
        Err(e) => (None, Some(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_depend_on_secret_time_and_body() {
        let a = super::sign("s3cret", 1_700_000_000, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, super::sign("other", 1_700_000_000, b"{}"));
        assert_ne!(a, super::sign("s3cret", 1_700_000_001, b"{}"));
        assert_ne!(a, super::sign("s3cret", 1_700_000_000, b"{ }"));
    }
}
