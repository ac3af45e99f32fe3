//! Prune: frees what no snapshot needs, repacks mostly-unused packs, revives
//! marked data a snapshot needs again, waits for running backups, and never
//! breaks a snapshot, even with backups running at the same time.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chom_repo::{
    BackupOptions, CheckOptions, LockGuard, LockKind, Progress, PruneOptions, ReadData,
    RestoreOptions, Source,
};

use super::util::{Scratch, assert_same_tree, dir_size, noise, objects, sample_tree};

fn prune_opts(grace: Duration) -> PruneOptions {
    let mut o = PruneOptions::default();
    o.grace = grace;
    o
}

async fn assert_check_ok(s: &Scratch) {
    let mut opts = CheckOptions::default();
    opts.read_data = ReadData::All;
    let report = s
        .reopen()
        .await
        .check(&opts, Progress::new())
        .await
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_then_prune_frees_space_and_keeps_the_rest() {
    let s = Scratch::new().await;
    let src = s.path("site");
    sample_tree(&src, 21);
    let old = s.backup(&src).await;
    fs::remove_file(src.join("wp-content/uploads/2026/photo.jpg")).unwrap();
    fs::write(src.join("fresh.bin"), noise(2_000_000, 77)).unwrap();
    let new = s.backup(&src).await;
    s.repo.forget(&[old.id]).await.unwrap();
    let before = dir_size(&s.repo_dir());

    let dry = {
        let mut o = prune_opts(Duration::ZERO);
        o.dry_run = true;
        s.repo.prune(&o, Progress::new()).await.unwrap()
    };
    assert!(
        dry.dry_run && dry.packs_marked + dry.packs_repacked > 0,
        "{dry:?}"
    );
    assert_eq!(dir_size(&s.repo_dir()), before, "a dry run changes nothing");

    let report = s
        .repo
        .prune(&prune_opts(Duration::ZERO), Progress::new())
        .await
        .unwrap();
    assert!(report.packs_deleted > 0, "{report:?}");
    let after = dir_size(&s.repo_dir());
    assert!(
        before - after > 2_500_000,
        "freed only {} bytes",
        before - after
    );
    assert_check_ok(&s).await;
    let out = s.restore(&new.id, "out").await;
    assert_same_tree(&src, &out.join("site"));
}

#[tokio::test(flavor = "multi_thread")]
async fn mostly_unused_packs_are_repacked() {
    let s = Scratch::new().await;
    let src = s.path("d");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), noise(3_000_000, 1)).unwrap();
    fs::write(src.join("b.bin"), noise(100_000, 2)).unwrap();
    let first = s.backup(&src).await;
    fs::remove_file(src.join("a.bin")).unwrap();
    let second = s.backup(&src).await;
    s.repo.forget(&[first.id]).await.unwrap();
    let report = s
        .repo
        .prune(&prune_opts(Duration::ZERO), Progress::new())
        .await
        .unwrap();
    assert_eq!(report.packs_repacked, 1, "{report:?}");
    assert!(
        report.packs_written >= 1 && report.packs_deleted >= 1,
        "{report:?}"
    );
    assert!(dir_size(&s.repo_dir()) < 1_000_000);
    assert_check_ok(&s).await;
    let out = s.restore(&second.id, "out").await;
    assert_same_tree(&src, &out.join("d"));
}

#[tokio::test(flavor = "multi_thread")]
async fn marks_wait_for_the_grace_period_and_revive_when_needed_again() {
    let s = Scratch::new().await;
    let src = s.path("site");
    sample_tree(&src, 22);
    let first = s.backup(&src).await;
    let snapshot = first.snapshot.clone();
    s.repo.forget(&[first.id]).await.unwrap();
    let packs_before = objects(&s.repo_dir(), "data").len();

    // Long grace: marked, nothing deleted.
    let r = s
        .repo
        .prune(&prune_opts(Duration::from_secs(3600)), Progress::new())
        .await
        .unwrap();
    assert!(r.packs_marked > 0 && r.packs_deleted == 0, "{r:?}");
    assert_eq!(objects(&s.repo_dir(), "data").len(), packs_before);

    // A snapshot written meanwhile (as by a backup that loaded the index
    // before the mark) uses the marked data: the next prune revives it.
    let revived = s.repo.save_snapshot(&snapshot).await.unwrap();
    let r = s
        .repo
        .prune(&prune_opts(Duration::ZERO), Progress::new())
        .await
        .unwrap();
    assert!(r.packs_revived > 0 && r.packs_deleted == 0, "{r:?}");
    assert_check_ok(&s).await;
    let out = s.restore(&revived, "out").await;
    assert_same_tree(&src, &out.join("site"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_backup_holds_back_deletion() {
    let s = Scratch::new().await;
    let src = s.path("site");
    sample_tree(&src, 23);
    let first = s.backup(&src).await;
    s.repo.forget(&[first.id]).await.unwrap();
    // A backup that started before the mark (its lock is older).
    let running = LockGuard::acquire(
        s.repo.storage(),
        LockKind::Backup,
        "backup",
        Duration::from_secs(1800),
    )
    .await
    .unwrap();
    let r = s
        .repo
        .prune(&prune_opts(Duration::ZERO), Progress::new())
        .await
        .unwrap();
    assert!(r.packs_marked > 0, "{r:?}");
    assert_eq!(r.packs_deleted, 0, "deleted under a running backup: {r:?}");
    assert!(r.packs_waiting > 0);
    running.release().await.unwrap();
    let r = s
        .repo
        .prune(&prune_opts(Duration::ZERO), Progress::new())
        .await
        .unwrap();
    assert!(r.packs_deleted > 0, "{r:?}");
    assert!(objects(&s.repo_dir(), "data").is_empty());
    assert_check_ok(&s).await;
}

fn version(dir: &Path, task: usize, v: usize) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(
        dir.join("shared.txt"),
        "shared by every version\n".repeat(1000),
    )
    .unwrap();
    fs::write(
        dir.join(format!("v{v}.bin")),
        noise(300_000 + v * 1000, (task * 100 + v) as u64),
    )
    .unwrap();
    fs::write(
        dir.join("sub/task.txt"),
        format!("task {task} version {v}\n").repeat(v + 1),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_running_during_prune_stay_restorable() {
    let s = Arc::new(Scratch::new().await);
    let mut tasks = Vec::new();
    for task in 0..3 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for v in 0..5 {
                let dir = s.path(&format!("src-{task}"));
                version(&dir, task, v);
                let mut opts = BackupOptions::default();
                opts.tags = chom_repo::parse_tags(&[format!("task={task}")]).unwrap();
                let done = s
                    .repo
                    .backup(vec![Source::path(&dir)], &opts, Progress::new())
                    .await
                    .unwrap();
                made.push((done.id, task, v));
                // Forget the version before last: garbage for prune.
                if made.len() >= 3 {
                    let (old, _, _) = made.remove(made.len() - 3);
                    s.repo.forget(&[old]).await.unwrap();
                }
            }
            made
        }));
    }
    let pruner = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut runs = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while std::time::Instant::now() < deadline {
                match s
                    .repo
                    .prune(&prune_opts(Duration::ZERO), Progress::new())
                    .await
                {
                    Ok(_) => runs += 1,
                    Err(chom_repo::Error::Locked { .. }) => {}
                    Err(e) => panic!("prune failed during backups: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                if runs > 0
                    && s.repo
                        .storage()
                        .list(chom_repo::ObjectKind::Lock)
                        .await
                        .unwrap()
                        .is_empty()
                {
                    // Keep going while backups run.
                }
                if runs >= 8 {
                    break;
                }
            }
            runs
        })
    };
    let mut kept = Vec::new();
    for t in tasks {
        kept.extend(t.await.unwrap());
    }
    assert!(pruner.await.unwrap() > 0, "prune ran during the backups");
    // With no backup running, a last prune may delete what is due.
    s.repo
        .prune(&prune_opts(Duration::ZERO), Progress::new())
        .await
        .unwrap();
    assert_check_ok(&s).await;
    let repo = s.reopen().await;
    for (id, task, v) in kept {
        let expected = s.path(&format!("expect-{task}-{v}"));
        version(&expected, task, v);
        let out = s.path(&format!("out-{task}-{v}"));
        repo.restore(&id, &out, &RestoreOptions::default(), Progress::new())
            .await
            .unwrap();
        let restored = out.join(format!("src-{task}"));
        for rel in ["shared.txt", "sub/task.txt", &format!("v{v}.bin")] {
            assert_eq!(
                fs::read(restored.join(rel)).unwrap(),
                fs::read(expected.join(rel)).unwrap(),
                "{rel} of task {task} v{v}"
            );
        }
    }
}
