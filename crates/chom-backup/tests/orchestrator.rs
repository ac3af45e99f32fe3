//! The orchestrator as a library: events reach subscribers and the outbox,
//! one operation per site at a time, failures leave failed records.

use std::sync::Arc;
use std::time::Duration;

use chom_backup::domain::{
    BackupConfiguration, BackupEvent, BackupStatus, DatabaseSpec, SystemClock, Trigger,
};
use chom_backup::{BackupOrchestrator, Catalog, Error, NewSite, RunOptions};
use chom_repo::{InitOptions, KdfParams, Repository, Storage};

async fn orchestrator(dir: &std::path::Path) -> BackupOrchestrator {
    let catalog = Catalog::open(&format!("sqlite:{}", dir.join("catalog.db").display()))
        .await
        .unwrap();
    let mut init = InitOptions::default();
    init.kdf = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let storage = Storage::open(dir.join("repo").to_str().unwrap(), true).unwrap();
    let repo = Repository::init(storage, Some("pw"), init).await.unwrap();
    BackupOrchestrator::new(
        catalog,
        repo,
        dir.join("tmp"),
        Arc::new(SystemClock),
        "test",
    )
}

async fn add_site(o: &BackupOrchestrator, dir: &std::path::Path, name: &str, db: Option<&str>) {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), format!("site {name}")).unwrap();
    o.add_site(
        NewSite {
            name: name.into(),
            root,
            excludes: vec![],
            database: db.map(|u| DatabaseSpec::parse(u, None).unwrap()),
            timezone: None,
        },
        false,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn events_reach_subscribers_and_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let o = orchestrator(dir.path()).await;
    add_site(&o, dir.path(), "blog", None).await;
    let mut events = o.subscribe();
    let backup = o
        .create_backup(
            "blog",
            BackupConfiguration::files_only(7).unwrap(),
            Trigger::Api,
            &RunOptions::default(),
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(got.event, BackupEvent::BackupCreated { backup_id, .. } if backup_id == backup.id),
        "{got:?}"
    );
    o.delete_backup(backup.id, "test").await.unwrap();
    let got = events.recv().await.unwrap();
    assert!(matches!(got.event, BackupEvent::BackupDeleted { .. }));
    let outbox = o.catalog().events(None, None, 10).await.unwrap();
    let kinds: Vec<&str> = outbox.iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds, vec!["BackupCreated", "BackupDeleted"]);
    let audit = o.catalog().audit_log(None, 10).await.unwrap();
    assert!(audit.iter().all(|a| a.actor == "test"));
    assert!(audit.iter().any(|a| a.action == "backup.create"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_site_refuses_or_waits() {
    let dir = tempfile::tempdir().unwrap();
    let o = orchestrator(dir.path()).await;
    add_site(&o, dir.path(), "blog", None).await;
    let site = o.site("blog").await.unwrap();
    o.catalog()
        .try_lock_site(site.id, "restore", None)
        .await
        .unwrap()
        .unwrap();
    let config = BackupConfiguration::files_only(7).unwrap();
    let err = o
        .create_backup("blog", config, Trigger::Manual, &RunOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SiteBusy { .. }), "{err}");
    assert!(
        err.to_string().contains("busy") && err.to_string().contains("--wait"),
        "{err}"
    );
    assert!(
        o.catalog()
            .list_backups(Some(site.id))
            .await
            .unwrap()
            .is_empty(),
        "nothing recorded"
    );

    let waiting = {
        let o = o.clone();
        tokio::spawn(async move {
            let run = RunOptions {
                wait: true,
                progress: None,
            };
            o.create_backup("blog", config, Trigger::Manual, &run).await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished(), "it waits while the site is busy");
    o.catalog().unlock_site(site.id).await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(done.status, BackupStatus::Completed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_dump_leaves_a_failed_record_and_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let o = orchestrator(dir.path()).await;
    add_site(
        &o,
        dir.path(),
        "shop",
        Some("mysql://root@127.0.0.1:1/nothing"),
    )
    .await;
    let mut events = o.subscribe();
    let err = o
        .create_backup(
            "shop",
            BackupConfiguration::full(7).unwrap(),
            Trigger::Schedule,
            &RunOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err}");
    let failed = o.catalog().list_backups(None).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, BackupStatus::Failed);
    assert!(failed[0].error.as_deref().unwrap().contains("database"));
    assert!(o.repository().snapshots().await.unwrap().is_empty());
    let got = events.recv().await.unwrap();
    assert!(matches!(got.event, BackupEvent::BackupFailed { .. }));
    // The site lock was released: a files backup works right away.
    o.create_backup(
        "shop",
        BackupConfiguration::files_only(7).unwrap(),
        Trigger::Manual,
        &RunOptions::default(),
    )
    .await
    .unwrap();
}
