//! The scheduler on a hand-moved clock: presets, cron, time zones, jitter
//! bounds, catch-up after downtime, stale sites, and a simulated day of
//! 1,000 sites.

use std::sync::Arc;
use std::time::Duration;

use chom_backup::catalog::JobFilter;
use chom_backup::domain::{
    BackupConfiguration, BackupStatus, Frequency, JobRequest, JobStatus, ManualClock,
};
use chom_backup::service::jitter;
use jiff::{SignedDuration, Timestamp};

use super::util::TestService;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The service's jobs of one kind (`backup`, `verify`), oldest first.
async fn jobs_of(t: &TestService, kind: &str) -> Vec<chom_backup::domain::Job> {
    let jobs = t
        .service
        .orchestrator()
        .catalog()
        .list_jobs(&JobFilter::default())
        .await
        .unwrap();
    jobs.into_iter()
        .rev()
        .filter(|j| j.request.kind() == kind)
        .collect()
}

async fn settle(t: &TestService) {
    let mut busy = Vec::new();
    for _ in 0..1200 {
        busy = t
            .service
            .orchestrator()
            .catalog()
            .list_jobs(&JobFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running))
            .collect();
        if busy.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} jobs did not settle in a minute, for example {:?}",
        busy.len(),
        busy.first()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slots_jitter_time_zones_cron_and_catch_up() {
    let clock = Arc::new(ManualClock::new(ts("2026-11-26T10:00:00Z")));
    let window = Duration::from_secs(3600);
    let t = TestService::start_with(clock.clone(), |c| c.scheduler.jitter_window = window).await;
    let o = t.service.orchestrator();
    let utc = t.site("utc-daily").await;
    let tokyo = t.site("tokyo-daily").await;
    let mut tokyo_site = tokyo.clone();
    tokyo_site.timezone = "Asia/Tokyo".into();
    o.update_site(tokyo_site, false).await.unwrap();
    let cron = t.site("every-six-hours").await;
    let config = BackupConfiguration::files_only(7).unwrap();
    o.schedule_automatic_backup("utc-daily", Frequency::Daily, config)
        .await
        .unwrap();
    o.schedule_automatic_backup("tokyo-daily", Frequency::Daily, config)
        .await
        .unwrap();
    o.schedule_automatic_backup("every-six-hours", "30 */6 * * *".parse().unwrap(), config)
        .await
        .unwrap();
    let j = |id: chom_backup::domain::SiteId| jitter(&id.to_string(), window);

    // Tokyo's midnight is 15:00 UTC; the UTC site waits for 00:00 UTC.
    let tokyo_due = ts("2026-11-26T15:00:00Z") + j(tokyo.id);
    clock.set(tokyo_due - SignedDuration::from_secs(1));
    t.service.scheduler_tick().await.unwrap();
    assert!(
        jobs_of(&t, "backup")
            .await
            .iter()
            .all(|job| job.site_id != Some(tokyo.id)),
        "not before its jitter"
    );
    clock.set(tokyo_due);
    t.service.scheduler_tick().await.unwrap();
    t.service.scheduler_tick().await.unwrap();
    let jobs = jobs_of(&t, "backup").await;
    assert_eq!(
        jobs.iter()
            .filter(|job| job.site_id == Some(tokyo.id))
            .count(),
        1,
        "one backup, however many ticks"
    );
    assert_eq!(
        jobs.iter()
            .filter(|job| job.site_id == Some(cron.id))
            .count(),
        1,
        "12:30 passed for the six-hourly site"
    );
    assert!(jobs.iter().all(|job| job.site_id != Some(utc.id)));
    settle(&t).await;

    // The service was down for three days: one catch-up backup, and the
    // missed slots are reported.
    clock.set(ts("2026-11-30T05:00:00Z"));
    t.service.scheduler_tick().await.unwrap();
    let jobs = jobs_of(&t, "backup").await;
    assert_eq!(
        jobs.iter()
            .filter(|job| job.site_id == Some(utc.id))
            .count(),
        1
    );
    assert_eq!(
        jobs.iter()
            .filter(|job| job.site_id == Some(tokyo.id))
            .count(),
        2
    );
    let events = o.catalog().events(Some(utc.id), None, 100).await.unwrap();
    let missed: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind() == "ScheduleMissed")
        .collect();
    assert_eq!(missed.len(), 1, "{events:?}");
    assert!(
        matches!(
            missed[0].event,
            chom_backup::domain::BackupEvent::ScheduleMissed {
                missed_slots: 3,
                ..
            }
        ),
        "{:?}",
        missed[0].event
    );
    let (_, metrics) = t.call("GET", "/metrics", Some(&t.admin), None).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("chom_missed_runs{site=\"utc-daily\"} 3\n"),
        "{metrics}"
    );
    settle(&t).await;
    let completed = o.catalog().list_backups(Some(utc.id)).await.unwrap();
    assert!(
        completed
            .iter()
            .all(|b| b.status == BackupStatus::Completed && b.trigger.as_str() == "schedule")
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_without_recent_backups_turns_stale() {
    let clock = Arc::new(ManualClock::new(ts("2026-11-26T10:00:00Z")));
    let t = TestService::start_with(clock.clone(), |_| {}).await;
    let o = t.service.orchestrator();
    let site = t.site("neglected").await;
    let err = o
        .schedule_automatic_backup(
            "neglected",
            Frequency::Weekly,
            BackupConfiguration::full(7).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no database"),
        "a schedule that cannot work is refused: {err}"
    );
    o.schedule_automatic_backup(
        "neglected",
        Frequency::Weekly,
        BackupConfiguration::files_only(7).unwrap(),
    )
    .await
    .unwrap();
    // A weekly site is stale after 1.5 weeks without a completed backup (its
    // scheduled backups fail: its document root is gone).
    std::fs::remove_dir_all(&site.root).unwrap();
    // Scheduled at Nov 26 10:00: stale from Dec 6 22:00 (1.5 weeks).
    clock.set(ts("2026-12-05T00:00:00Z"));
    t.service.scheduler_tick().await.unwrap();
    let (_, health) = t.call("GET", "/v1/health", None, None).await;
    assert!(
        health["stale_sites"].as_array().unwrap().is_empty(),
        "{health}"
    );
    clock.set(ts("2026-12-07T00:00:00Z"));
    t.service.scheduler_tick().await.unwrap();
    let (_, health) = t.call("GET", "/v1/health", None, None).await;
    assert_eq!(
        health["stale_sites"],
        serde_json::json!([site.id.to_string()])
    );
    let events = o.catalog().events(Some(site.id), None, 100).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.kind() == "SiteStale")
            .count(),
        1
    );
    t.service.scheduler_tick().await.unwrap();
    let events = o.catalog().events(Some(site.id), None, 100).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.kind() == "SiteStale")
            .count(),
        1,
        "raised once, not every tick"
    );
    let (_, metrics) = t.call("GET", "/metrics", Some(&t.admin), None).await;
    assert!(
        metrics.as_str().unwrap().contains("chom_stale_sites 1"),
        "{metrics}"
    );
    t.stop().await;
}

const DAY_START: &str = "2026-11-26T23:50:00Z";
const DAY_WINDOW: Duration = Duration::from_secs(3600);

fn day_config(c: &mut chom_backup::service::ServiceConfig) {
    c.scheduler.jitter_window = DAY_WINDOW;
    c.workers = 2;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_simulated_day_of_a_thousand_sites() {
    let clock = Arc::new(ManualClock::new(ts(DAY_START)));
    let t = TestService::start_with(clock.clone(), day_config).await;
    simulated_day(t, clock).await;
}

/// The same day on PostgreSQL, where the scheduler queues several sites'
/// backups side by side.
#[tokio::test(flavor = "multi_thread")]
async fn a_simulated_day_of_a_thousand_sites_on_postgresql() {
    let clock = Arc::new(ManualClock::new(ts(DAY_START)));
    if let Some(t) = TestService::start_on_postgres(clock.clone(), day_config).await {
        simulated_day(t, clock).await;
    }
}

/// 1,000 daily sites from 23:50 to 01:20, a tick a minute: each is backed
/// up exactly once, inside its jitter window, never more than the workers
/// at once.
async fn simulated_day(t: TestService, clock: Arc<ManualClock>) {
    let start = ts(DAY_START);
    let window = DAY_WINDOW;
    let o = t.service.orchestrator();
    let config = BackupConfiguration::files_only(7).unwrap();
    let mut sites = Vec::new();
    for i in 0..1000 {
        let site = t.site(&format!("site-{i:04}")).await;
        o.schedule_automatic_backup(&site.id.to_string(), Frequency::Daily, config)
            .await
            .unwrap();
        sites.push(site);
    }
    let mut most_running = 0;
    // 23:50 to 01:20, one tick a minute, letting the workers drain between.
    for minute in 0..90 {
        clock.set(start + SignedDuration::from_mins(minute));
        t.service.scheduler_tick().await.unwrap();
        for _ in 0..20 {
            let running = o
                .catalog()
                .list_jobs(&JobFilter {
                    status: Some(JobStatus::Running),
                    ..JobFilter::default()
                })
                .await
                .unwrap()
                .len();
            most_running = most_running.max(running);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    settle(&t).await;
    assert!(
        most_running <= 2,
        "{most_running} jobs ran at once with 2 workers"
    );
    let jobs = jobs_of(&t, "backup").await;
    assert_eq!(jobs.len(), 1000, "one backup job per site");
    let midnight = ts("2026-11-27T00:00:00Z");
    for job in &jobs {
        let site = job.site_id.unwrap();
        let queued = job.created_at;
        assert!(
            queued >= midnight + jitter(&site.to_string(), window),
            "queued before its slot"
        );
        assert!(
            queued < midnight + SignedDuration::from_secs(3600) + SignedDuration::from_mins(1),
            "outside the window"
        );
    }
    let backups = o.catalog().list_backups(None).await.unwrap();
    assert_eq!(backups.len(), 1000);
    assert!(backups.iter().all(|b| b.status == BackupStatus::Completed));
    let per_site: std::collections::HashSet<_> = backups.iter().map(|b| b.site_id).collect();
    assert_eq!(per_site.len(), 1000, "each site exactly once");
    t.stop().await;
}

/// Flip a byte in every data pack of the test service's repository.
fn damage_data_packs(t: &TestService) {
    let mut dirs = vec![t.dir.path().join("repo/data")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[10] ^= 0xff;
                std::fs::write(&path, bytes).unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_verification_reads_back_newest_backups_and_reports_damage() {
    let clock = Arc::new(ManualClock::new(ts("2026-11-26T10:00:00Z")));
    let window = Duration::from_secs(600);
    let t = TestService::start_with(clock.clone(), |c| {
        c.scheduler.jitter_window = window;
        c.scheduler.verify = Some(Frequency::Daily);
    })
    .await;
    let o = t.service.orchestrator();
    t.site("shop").await;
    let config = BackupConfiguration::files_only(30).unwrap();
    let run = chom_backup::RunOptions::default();
    let manual = chom_backup::domain::Trigger::Manual;
    o.create_backup("shop", config, manual, &run).await.unwrap();
    clock.set(ts("2026-11-26T11:00:00Z"));
    let newest = o.create_backup("shop", config, manual, &run).await.unwrap();

    // The first pass starts the clock; the next daily slot verifies the
    // newest backup of each site, deeply.
    t.service.scheduler_tick().await.unwrap();
    assert!(jobs_of(&t, "verify").await.is_empty());
    let slot = ts("2026-11-27T00:00:00Z") + jitter("verification", window);
    clock.set(slot - SignedDuration::from_secs(1));
    t.service.scheduler_tick().await.unwrap();
    assert!(
        jobs_of(&t, "verify").await.is_empty(),
        "not before its slot"
    );
    clock.set(slot);
    t.service.scheduler_tick().await.unwrap();
    t.service.scheduler_tick().await.unwrap();
    settle(&t).await;
    let jobs = jobs_of(&t, "verify").await;
    assert_eq!(jobs.len(), 1, "one verification per slot and site");
    assert!(matches!(
        jobs[0].request,
        JobRequest::Verify { backup, deep: true } if backup == newest.id
    ));
    assert_eq!(jobs[0].result.as_ref().unwrap()["valid"], true, "{jobs:?}");
    let failures = |events: &[chom_backup::catalog::StoredEvent]| {
        events
            .iter()
            .filter(|e| e.event.kind() == "BackupVerificationFailed")
            .count()
    };
    let events = o.catalog().events(None, None, 100).await.unwrap();
    assert_eq!(failures(&events), 0);

    // Damaged data: the next day's verification says so, as an event.
    damage_data_packs(&t);
    clock.set(slot + SignedDuration::from_hours(24));
    t.service.scheduler_tick().await.unwrap();
    settle(&t).await;
    let jobs = jobs_of(&t, "verify").await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].result.as_ref().unwrap()["valid"], false, "{jobs:?}");
    let events = o.catalog().events(None, None, 100).await.unwrap();
    assert_eq!(failures(&events), 1, "{events:?}");
    let failed = events
        .iter()
        .find(|e| e.event.kind() == "BackupVerificationFailed")
        .unwrap();
    assert_eq!(failed.event.backup_id(), Some(newest.id));
    t.stop().await;
}
