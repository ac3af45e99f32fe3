//! Webhook subscriptions: events delivered to a URL, signed.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event kinds delivered (`BackupCreated`, ...); empty for all.
    pub events: Vec<String>,
    /// When it was added.
    pub created_at: Timestamp,
    /// The last event delivered.
    pub last_event: Option<String>,
    /// Failed tries of the next event.
    pub attempts: u32,
}

/// One try to deliver one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The subscription.
    pub webhook_id: String,
    /// The event.
    pub event_id: String,
    /// Which try (1 = first).
    pub attempt: u32,
    /// The HTTP status received.
    pub status_code: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
    /// When.
    pub at: Timestamp,
}
