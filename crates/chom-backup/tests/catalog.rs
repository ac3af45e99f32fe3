//! The same catalog test suite on SQLite and on PostgreSQL.
//!
//! PostgreSQL is expected at 127.0.0.1:5432 (trust auth, user postgres);
//! each run creates a fresh database and drops it afterwards. When it is not
//! reachable the PostgreSQL half is skipped with a notice, unless `CI=true`,
//! where it is required.

use chom_backup::Catalog;
use chom_backup::catalog::{AuditEntry, AuditOutcome, Changes};
use chom_backup::domain::{
    Backup, BackupConfiguration, BackupEvent, BackupStatus, DatabaseSpec, Frequency, PasswordRef,
    Schedule, Site, SiteId, Trigger,
};
use jiff::Timestamp;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

struct PgDatabase {
    name: String,
}

impl PgDatabase {
    async fn create() -> Option<Self> {
        sqlx::any::install_default_drivers();
        let admin = match sqlx::AnyPool::connect(PG_ADMIN).await {
            Ok(pool) => pool,
            Err(e) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("PostgreSQL is required on CI at {PG_ADMIN}: {e}");
                }
                eprintln!(
                    "notice: PostgreSQL not reachable at {PG_ADMIN} ({e}); skipping the PostgreSQL catalog tests"
                );
                return None;
            }
        };
        let name = format!(
            "chom_catalog_test_{}",
            chom_backup::domain::random_u128() % 1_000_000_000
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        Some(PgDatabase { name })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    async fn drop_it(self) {
        let admin = sqlx::AnyPool::connect(PG_ADMIN).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
    }
}

/// Run `suite` on a fresh SQLite catalog and a fresh PostgreSQL catalog.
async fn on_both<F, Fut>(suite: F)
where
    F: Fn(Catalog, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("catalog.db").display());
    suite(Catalog::open(&url).await.unwrap(), url).await;
    if let Some(pg) = PgDatabase::create().await {
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
