//! Locks: one maintenance operation at a time, a conflict names the holder,
//! stale and dead-process locks are released.

use std::time::Duration;

use chom_repo::{Error, LockInfo, LockKind, Progress, PruneOptions, list_locks};

use super::util::Scratch;

async fn plant_lock(s: &Scratch, info: &LockInfo) {
    let dir = s.repo_dir().join("locks");
    std::fs::create_dir_all(&dir).unwrap();
    let name = chom_repo::Id::random().to_hex();
    std::fs::write(dir.join(name), serde_json::to_vec(info).unwrap()).unwrap();
}

fn lock(host: &str, pid: u32, refreshed_ago: i64) -> LockInfo {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(refreshed_ago);
    LockInfo {
        kind: LockKind::Maintenance,
        operation: "prune".into(),
        host: host.into(),
        pid,
        username: "ops".into(),
        created: t,
        refreshed: t,
    }
}

fn quick_prune() -> PruneOptions {
    let mut o = PruneOptions::default();
    o.grace = Duration::ZERO;
    o
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_maintenance_lock_blocks_prune_and_names_its_holder() {
    let s = Scratch::new().await;
    plant_lock(&s, &lock("backup-host-7", 4242, 5)).await;
    let err = s
        .repo
        .prune(&quick_prune(), Progress::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Locked { pid: 4242, .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("backup-host-7") && text.contains("4242"),
        "{text}"
    );
    // Our own lock was taken back: only the planted one remains.
    assert_eq!(list_locks(s.repo.storage()).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_and_dead_process_locks_are_released() {
    let s = Scratch::new().await;
    // Refreshed an hour ago on another host: stale after 30 minutes.
    plant_lock(&s, &lock("other-host", 1, 3600)).await;
    // On this host, fresh, but the process is gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    plant_lock(&s, &lock(&chom_repo_hostname(), dead_pid, 1)).await;
    s.repo.prune(&quick_prune(), Progress::new()).await.unwrap();
    assert!(
        list_locks(s.repo.storage()).await.unwrap().is_empty(),
        "stale locks removed, own lock released"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_stale_time_makes_a_silent_holder_stale() {
    let s = Scratch::new().await;
    plant_lock(&s, &lock("other-host", 1, 5)).await;
    let repo = s
        .reopen()
        .await
        .with_stale_lock_after(Duration::from_secs(2));
    repo.prune(&quick_prune(), Progress::new()).await.unwrap();
}

fn chom_repo_hostname() -> String {
    hostname::get().unwrap().into_string().unwrap()
}
