//! Webhooks: a receiver on loopback checks every signature and sees every
//! event, in order, even when it fails at first.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chom_backup::RunOptions;
use chom_backup::domain::{BackupConfiguration, Trigger};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use super::util::TestService;

#[derive(Default)]
struct Received {
    /// (event id, signature valid)
    events: Vec<(String, bool)>,
    /// Requests to refuse before accepting.
    refuse: usize,
    refused: usize,
}

const SECRET: &str = "a-long-webhook-secret-123";

fn valid(headers: &HeaderMap, body: &[u8]) -> bool {
    let timestamp = headers["x-chom-timestamp"].to_str().unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    headers["x-chom-signature"].to_str().unwrap() == expected
}

async fn receive(
    State(state): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let mut r = state.lock().unwrap();
    if r.refused < r.refuse {
        r.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let event: Value = serde_json::from_slice(&body).unwrap();
    let ok = valid(&headers, &body);
    r.events
        .push((event["id"].as_str().unwrap().to_string(), ok));
    StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_arrives_signed_and_in_order() {
    let received = Arc::new(Mutex::new(Received {
        refuse: 2,
        ..Received::default()
    }));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let t = TestService::start().await;
    t.site("blog").await;
    let admin = Some(t.admin.as_str());
    let (status, hook) = t
        .call(
            "POST",
            "/v1/webhooks",
            admin,
            Some(json!({"url": url, "secret": SECRET})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let (status, bad) = t
        .call(
            "POST",
            "/v1/webhooks",
            admin,
            Some(json!({"url": url, "secret": SECRET, "events": ["Nope"]})),
        )
        .await;
    assert_eq!((status, bad["field"].as_str()), (400, Some("events")));

    let orchestrator = t.service.orchestrator();
    let config = BackupConfiguration::files_only(7).unwrap();
    for _ in 0..3 {
        let b = orchestrator
            .create_backup("blog", config, Trigger::Api, &RunOptions::default())
            .await
            .unwrap();
        orchestrator.delete_backup(b.id, "test").await.unwrap();
    }
    let (_, events) = t.call("GET", "/v1/events", admin, None).await;
    let expected: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(expected.len(), 6);
    for _ in 0..200 {
        if received.lock().unwrap().events.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got = received.lock().unwrap().events.clone();
    let ids: Vec<String> = got.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, expected, "every event, in order, once");
    assert!(got.iter().all(|(_, ok)| *ok), "every signature checks out");
    let (_, deliveries) = t
        .call(
            "GET",
            &format!("/v1/webhooks/{}/deliveries", hook["id"].as_str().unwrap()),
            admin,
            None,
        )
        .await;
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(
        deliveries
            .iter()
            .filter(|d| d["status_code"] == 503)
            .count(),
        2,
        "the refusals were retried"
    );
    assert_eq!(
        deliveries
            .iter()
            .filter(|d| d["status_code"] == 200 || d["status_code"] == 204)
            .count(),
        6
    );
    // The delivery log is history: kept for the configured 30 days, then
    // purged.
    let logged = deliveries.len() as u64;
    t.service.purge_history().await;
    let catalog = t.service.orchestrator().catalog();
    let hook_id = hook["id"].as_str().unwrap();
    assert_eq!(
        catalog.deliveries(hook_id, 100).await.unwrap().len() as u64,
        logged
    );
    let tomorrow = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    assert_eq!(catalog.purge_deliveries(tomorrow).await.unwrap(), logged);
    assert!(catalog.deliveries(hook_id, 100).await.unwrap().is_empty());
    t.stop().await;
}
