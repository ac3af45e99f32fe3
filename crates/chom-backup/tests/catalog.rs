//! The same catalog test suite on SQLite and on PostgreSQL.
//!
//! PostgreSQL is expected at 127.0.0.1:5432 (trust auth, user postgres);
//! each run creates a fresh database and drops it afterwards. When it is not
//! reachable the PostgreSQL half is skipped with a notice, unless `CI=true`,
//! where it is required.

use chom_backup::Catalog;
use chom_backup::catalog::{AuditEntry, AuditOutcome, Changes, JobEnd, JobFilter};
use chom_backup::domain::{
    Backup, BackupConfiguration, BackupEvent, BackupStatus, DatabaseSpec, Frequency, PasswordRef,
    Schedule, Site, SiteId, Trigger,
};
use jiff::Timestamp;

#[path = "support/pg.rs"]
mod pg;
use pg::PgDatabase;

/// Run `suite` on a fresh SQLite catalog and a fresh PostgreSQL catalog.
async fn on_both<F, Fut>(suite: F)
where
    F: Fn(Catalog, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("catalog.db").display());
    suite(Catalog::open(&url).await.unwrap(), url).await;
    if let Some(pg) = PgDatabase::create("catalog").await {
        let url = pg.url();
        let catalog = Catalog::open(&url).await.unwrap();
        suite(catalog.clone(), url).await;
        catalog.close().await;
        pg.drop_it().await;
    }
}

fn site(name: &str) -> Site {
    let now = Timestamp::now();
    Site {
        id: SiteId::new(now),
        name: name.into(),
        root: format!("/var/www/{name}").into(),
        excludes: vec!["wp-content/cache".into(), "*.log".into()],
        database: Some(
            DatabaseSpec::parse(
                "mysql://wp@127.0.0.1:3306/blog",
                Some(PasswordRef::Env("BLOG_DB_PW".into())),
            )
            .unwrap(),
        ),
        timezone: "Europe/Paris".into(),
        created_at: now,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sites_round_trip_and_names_are_unique() {
    on_both(|catalog, _| async move {
        let blog = site("blog");
        catalog.insert_site(&blog).await.unwrap();
        let mut plain = site("static");
        plain.database = None;
        catalog.insert_site(&plain).await.unwrap();
        let found = catalog.find_site("blog").await.unwrap().unwrap();
        assert_eq!(found.id, blog.id);
        assert_eq!(
            found.database, blog.database,
            "the password reference survives, never a secret"
        );
        assert_eq!(found.excludes, blog.excludes);
        assert_eq!(
            catalog
                .find_site(&blog.id.to_string())
                .await
                .unwrap()
                .unwrap()
                .name,
            "blog"
        );
        assert!(catalog.find_site("nope").await.unwrap().is_none());
        assert_eq!(catalog.list_sites().await.unwrap().len(), 2);
        assert!(
            catalog.insert_site(&site("blog")).await.is_err(),
            "duplicate name refused"
        );
        catalog.delete_site(plain.id).await.unwrap();
        assert_eq!(catalog.list_sites().await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_events_and_audit_commit_together() {
    on_both(|catalog, _| async move {
        let blog = site("blog");
        catalog.insert_site(&blog).await.unwrap();
        let t0: Timestamp = "2026-11-20T10:00:00Z".parse().unwrap();
        let mut older = Backup::new(
            blog.id,
            BackupConfiguration::full(30).unwrap(),
            Trigger::Schedule,
            t0,
        );
        let mut newer = Backup::new(
            blog.id,
            BackupConfiguration::files_only(7)
                .unwrap()
                .without_compression(),
            Trigger::Manual,
            t0 + jiff::SignedDuration::from_hours(24),
        );
        newer.configuration = newer.configuration.with_encryption();
        catalog
            .commit(Changes {
                backups: vec![&older, &newer],
                ..Changes::default()
            })
            .await
            .unwrap();

        older.status = BackupStatus::Completed;
        older.snapshot_id = Some("ab".repeat(32));
        older.logical_bytes = 12345;
        older.completed_at = Some(t0 + jiff::SignedDuration::from_mins(3));
        let event = BackupEvent::BackupCreated {
            backup_id: older.id,
            site_id: blog.id,
            backup_type: older.backup_type(),
            logical_bytes: 12345,
            added_bytes: 100,
        };
        let audit = AuditEntry {
            actor: "cli:root".into(),
            action: "backup.create".into(),
            site_id: Some(blog.id),
            backup_id: Some(older.id),
            outcome: AuditOutcome::Ok,
            detail: Some("full backup".into()),
            at: None,
        };
        let stored = catalog
            .commit(Changes {
                backups: vec![&older],
                events: vec![event.clone()],
                audit: Some(audit),
                ..Changes::default()
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);

        let back = catalog.backup(older.id).await.unwrap().unwrap();
        assert_eq!(back, older);
        let list = catalog.list_backups(Some(blog.id)).await.unwrap();
        assert_eq!(
            list.iter().map(|b| b.id).collect::<Vec<_>>(),
            vec![newer.id, older.id],
            "newest first"
        );
        assert!(
            list[0].configuration.requires_encryption() && !list[0].configuration.is_compressed()
        );
        assert_eq!(list[0].expires_at, newer.expires_at);

        let events = catalog.events(Some(blog.id), None, 100).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, event);
        assert!(
            catalog
                .events(Some(blog.id), Some(&events[0].id), 100)
                .await
                .unwrap()
                .is_empty()
        );
        let audit = catalog.audit_log(Some(blog.id), 10).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].actor, "cli:root");

        catalog
            .commit(Changes {
                deleted_backups: vec![newer.id],
                events: vec![BackupEvent::BackupDeleted {
                    backup_id: newer.id,
                    site_id: blog.id,
                    reason: "test".into(),
                }],
                ..Changes::default()
            })
            .await
            .unwrap();
        assert_eq!(catalog.list_backups(None).await.unwrap().len(), 1);
        let kinds: Vec<&str> = catalog
            .events(None, None, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event.kind())
            .collect::<Vec<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            kinds,
            vec!["BackupCreated", "BackupDeleted"],
            "events in order of writing"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_one_per_site() {
    on_both(|catalog, _| async move {
        let blog = site("blog");
        catalog.insert_site(&blog).await.unwrap();
        let daily = Schedule {
            site_id: blog.id,
            frequency: Frequency::Daily,
            configuration: BackupConfiguration::full(14).unwrap(),
            created_at: Timestamp::now(),
        };
        catalog.set_schedule(&daily).await.unwrap();
        let cron = Schedule {
            frequency: "30 2 * * 1-5".parse().unwrap(),
            ..daily.clone()
        };
        catalog.set_schedule(&cron).await.unwrap();
        let got = catalog.schedule(blog.id).await.unwrap().unwrap();
        assert_eq!(got.frequency, Frequency::Cron("30 2 * * 1-5".into()));
        assert_eq!(catalog.list_schedules().await.unwrap().len(), 1);
        assert!(catalog.remove_schedule(blog.id).await.unwrap());
        assert!(!catalog.remove_schedule(blog.id).await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn site_locks_exclude_and_recover_from_dead_holders() {
    on_both(|catalog, url| async move {
        let blog = site("blog");
        catalog.insert_site(&blog).await.unwrap();
        let b = Backup::new(blog.id, BackupConfiguration::full(30).unwrap(), Trigger::Manual, Timestamp::now());
        catalog.try_lock_site(blog.id, "restore", Some(b.id)).await.unwrap().unwrap();
        let busy = catalog.try_lock_site(blog.id, "backup", None).await.unwrap().unwrap_err();
        assert_eq!(busy.operation, "restore");
        assert_eq!(busy.holder.pid, std::process::id());
        assert_eq!(catalog.backups_being_restored().await.unwrap(), vec![b.id]);
        catalog.heartbeat_site(blog.id).await.unwrap();
        catalog.unlock_site(blog.id).await.unwrap();
        assert!(catalog.backups_being_restored().await.unwrap().is_empty());

        // A lock left by a process that died on this host is taken over.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        sqlx::any::install_default_drivers();
        let url = url.replace("sqlite:", "sqlite://");
        let raw = sqlx::AnyPool::connect(&url).await.unwrap();
        let now = Timestamp::now().as_microsecond();
        sqlx::query("INSERT INTO site_locks (site_id, operation, backup_id, holder_host, holder_pid, acquired_at, heartbeat_at) VALUES ($1, 'backup', NULL, $2, $3, $4, $5)")
            .bind(blog.id.to_string())
            .bind(chom_repo::hostname())
            .bind(i64::from(dead))
            .bind(now)
            .bind(now)
            .execute(&raw)
            .await
            .unwrap();
        raw.close().await;
        catalog.try_lock_site(blog.id, "backup", None).await.unwrap().expect("stale lock taken over");
        catalog.unlock_site(blog.id).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn job_queue_merges_orders_leases_and_gives_up() {
    use chom_backup::domain::{BackupId, JobRequest, JobStatus, Retention};
    use jiff::SignedDuration;

    on_both(|catalog, _| async move {
        let now = Timestamp::now();
        let lease = SignedDuration::from_secs(30);
        let (a, b) = (SiteId::new(now), SiteId::new(now));
        let backup_of = |site| JobRequest::Backup {
            backup: BackupId::new(now),
            site,
        };

        // A second backup queued for the same site merges into the first.
        let (first, created) = catalog
            .enqueue_job(&backup_of(a), Some(a), "admin", now, 3)
            .await
            .unwrap();
        assert!(created);
        let (merged, created) = catalog
            .enqueue_job(&backup_of(a), Some(a), "scheduler", now, 3)
            .await
            .unwrap();
        assert!(!created, "a queued backup absorbs the next one");
        assert_eq!(merged.id, first.id);
        let retention = JobRequest::Retention {
            site: a,
            policy: Retention::Expiry,
        };
        let (retention_job, _) = catalog
            .enqueue_job(&retention, Some(a), "admin", now, 3)
            .await
            .unwrap();
        let (other_site, _) = catalog
            .enqueue_job(&backup_of(b), Some(b), "admin", now, 3)
            .await
            .unwrap();
        assert_eq!(catalog.queue_depth().await.unwrap(), 3);

        // One running job per site: while w1 runs A's backup, w2 gets B's,
        // not A's retention.
        let taken = catalog.claim_job("w1", now, lease).await.unwrap().unwrap();
        assert_eq!(taken.id, first.id);
        assert_eq!(taken.ran_by.as_deref(), Some("w1"));
        assert_eq!(taken.attempts, 1);
        let taken_b = catalog.claim_job("w2", now, lease).await.unwrap().unwrap();
        assert_eq!(taken_b.id, other_site.id);
        assert!(catalog.claim_job("w3", now, lease).await.unwrap().is_none());

        // Only the holder renews or finishes.
        assert_eq!(
            catalog
                .renew_lease(&first.id, "w2", now + lease, None)
                .await
                .unwrap(),
            None
        );
        assert!(
            !catalog
                .finish_job(&first.id, "w2", &JobEnd::completed(None), now)
                .await
                .unwrap()
        );
        assert_eq!(
            catalog
                .renew_lease(&first.id, "w1", now + lease, None)
                .await
                .unwrap(),
            Some(false)
        );

        // w1 goes silent: after its lease the job is queued again with a
        // backoff, and another worker takes it (second attempt).
        let late = now + SignedDuration::from_secs(31);
        let expired = catalog.requeue_expired_jobs(late).await.unwrap();
        let mut expired: Vec<String> = expired.into_iter().map(|j| j.id).collect();
        expired.sort();
        let mut both = vec![first.id.clone(), other_site.id.clone()];
        both.sort();
        assert_eq!(
            expired, both,
            "both silent workers' jobs go back to the queue"
        );
        let requeued = catalog.job(&first.id).await.unwrap().unwrap();
        assert_eq!(requeued.status, JobStatus::Queued);
        assert!(requeued.error.unwrap().contains("w1 stopped responding"));
        // (stored to the microsecond)
        assert!(requeued.run_after >= late + SignedDuration::from_millis(14_999));
        // Before the backoff ends, A's lane is free, so A's retention runs
        // first; the backup waits its turn.
        let next = catalog.claim_job("w3", late, lease).await.unwrap().unwrap();
        assert_eq!(next.id, retention_job.id);
        assert!(
            catalog
                .finish_job(&next.id, "w3", &JobEnd::completed(None), late)
                .await
                .unwrap()
        );
        let after_backoff = late + SignedDuration::from_secs(16);
        // Oldest first: A's backup, then B's.
        let retried = catalog
            .claim_job("w4", after_backoff, lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(retried.id, first.id);
        assert_eq!(retried.attempts, 2);
        assert_eq!(retried.ran_by.as_deref(), Some("w4"));
        // The old holder coming back cannot finish it.
        assert!(
            !catalog
                .finish_job(&first.id, "w1", &JobEnd::completed(None), after_backoff)
                .await
                .unwrap()
        );

        // A cancel reaches the running job at its next renewal.
        let cancelled = catalog
            .cancel_job(&first.id, after_backoff)
            .await
            .unwrap()
            .unwrap();
        assert!(cancelled.cancel_requested);
        assert_eq!(cancelled.status, JobStatus::Running);
        assert_eq!(
            catalog
                .renew_lease(&first.id, "w4", after_backoff + lease, None)
                .await
                .unwrap(),
            Some(true)
        );
        assert!(
            catalog
                .finish_job(&first.id, "w4", &JobEnd::cancelled(), after_backoff)
                .await
                .unwrap()
        );

        let retried_b = catalog
            .claim_job("w4", after_backoff, lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(retried_b.id, other_site.id);
        catalog
            .finish_job(&retried_b.id, "w4", &JobEnd::completed(None), after_backoff)
            .await
            .unwrap();

        // Out of attempts, an expired job fails for good.
        let (last_chance, _) = catalog
            .enqueue_job(&backup_of(a), Some(a), "admin", after_backoff, 1)
            .await
            .unwrap();
        let taken = catalog
            .claim_job("w5", after_backoff, lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.id, last_chance.id);
        catalog
            .requeue_expired_jobs(after_backoff + SignedDuration::from_secs(60))
            .await
            .unwrap();
        let failed = catalog.job(&last_chance.id).await.unwrap().unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
        assert!(failed.error.unwrap().contains("giving up"));

        // A queued job is cancelled at once.
        let (queued, _) = catalog
            .enqueue_job(&JobRequest::Prune, None, "admin", after_backoff, 3)
            .await
            .unwrap();
        let gone = catalog
            .cancel_job(&queued.id, after_backoff)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(gone.status, JobStatus::Cancelled);
        assert_eq!(catalog.queue_depth().await.unwrap(), 0);

        // History purge: only finished jobs older than the cut-off go.
        assert_eq!(catalog.purge_finished_jobs(now).await.unwrap(), 0);
        let finished = catalog
            .list_jobs(&JobFilter::default())
            .await
            .unwrap()
            .len() as u64;
        let (waiting, _) = catalog
            .enqueue_job(&backup_of(b), Some(b), "admin", after_backoff, 3)
            .await
            .unwrap();
        let later = after_backoff + SignedDuration::from_hours(24);
        assert_eq!(catalog.purge_finished_jobs(later).await.unwrap(), finished);
        let left = catalog.list_jobs(&JobFilter::default()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, waiting.id, "a queued job is never purged");
    })
    .await;
}
