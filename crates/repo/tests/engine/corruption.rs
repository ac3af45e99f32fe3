//! Damage is always detected: a flipped byte anywhere in a pack, index file
//! or snapshot is found by `check --read-data`, and restore never returns
//! wrong data; a missing pack is reported with the snapshots it breaks.

use std::fs;
use std::path::Path;

use chom_repo::{CheckOptions, Progress, ReadData, RestoreOptions};

use super::util::{Scratch, assert_same_tree, objects, sample_tree};

fn flip(path: &Path, at: usize) -> Vec<u8> {
    let original = fs::read(path).unwrap();
    let mut bad = original.clone();
    let at = at.min(bad.len() - 1);
    bad[at] ^= 0x5A;
    fs::write(path, bad).unwrap();
    original
}

fn random_below(n: usize) -> usize {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    (u64::from_le_bytes(bytes) % n as u64) as usize
}

async fn read_data_check(s: &Scratch) -> chom_repo::CheckReport {
    let mut opts = CheckOptions::default();
    opts.read_data = ReadData::All;
    // A fresh handle: nothing cached from before the damage.
    s.reopen()
        .await
        .check(&opts, Progress::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn any_flipped_byte_is_detected() {
    let s = Scratch::new().await;
    let src = s.path("site");
    sample_tree(&src, 7);
    let first = s.backup(&src).await;
    fs::write(src.join("index.php"), "second version").unwrap();
    let second = s.backup(&src).await;
    assert!(read_data_check(&s).await.is_ok());

    let mut cases = 0;
    for sub in ["data", "index", "snapshots"] {
        for object in objects(&s.repo_dir(), sub) {
            let len = fs::metadata(&object).unwrap().len() as usize;
            // Both ends (trailer, header, nonce, tag), fixed interior points,
            // and a few random ones per run.
            let mut positions = vec![0, 1, len / 3, len / 2, len - 20, len - 5, len - 1];
            positions.extend((0..3).map(|_| random_below(len)));
            for at in positions {
                let original = flip(&object, at);
                cases += 1;
                let report = read_data_check(&s).await;
                assert!(
                    !report.is_ok(),
                    "flip at {at} of {} not detected",
                    object.display()
                );
                // Restore: an error, or exactly the right data. Never silently wrong.
                for (snap, expect_current) in [(&first, false), (&second, true)] {
                    let repo = s.reopen().await;
                    let target = s.path(&format!("r-{cases}-{}", snap.id.short()));
                    let restored = repo
                        .restore(
                            &snap.id,
                            &target,
                            &RestoreOptions::default(),
                            Progress::new(),
                        )
                        .await;
                    if restored.is_ok() && expect_current {
                        assert_same_tree(&src, &target.join("site"));
                    } else if restored.is_ok() {
                        let php = fs::read_to_string(target.join("site/index.php")).unwrap();
                        assert_eq!(php, "<?php echo 7;\n".repeat(50));
                    }
                    let _ = fs::remove_dir_all(&target);
                }
                fs::write(&object, original).unwrap();
            }
        }
    }
    assert!(cases >= 10 * 4, "only {cases} cases ran");
    assert!(
        read_data_check(&s).await.is_ok(),
        "repository intact again after undoing the flips"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_pack_names_the_snapshots_it_breaks() {
    let s = Scratch::new().await;
    let src = s.path("site");
    sample_tree(&src, 8);
    let first = s.backup(&src).await;
    let other = s.path("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("unique.bin"), super::util::noise(2_000_000, 99)).unwrap();
    let second = s.backup(&other).await;
    // Find the data pack holding the second snapshot's unique file.
    let before: Vec<_> = objects(&s.repo_dir(), "data");
    let mut victim = None;
    for pack in &before {
        let bytes = fs::read(pack).unwrap();
        if bytes.len() > 1_900_000 && bytes.len() < 2_200_000 {
            victim = Some(pack.clone());
        }
    }
    let victim = victim.expect("a pack of about 2 MB holds the unique file");
    fs::remove_file(&victim).unwrap();
    let report = s
        .reopen()
        .await
        .check(&CheckOptions::default(), Progress::new())
        .await
        .unwrap();
    let missing = report
        .problems
        .iter()
        .find(|p| p.reason.contains("missing"))
        .expect("the missing pack is reported");
    assert_eq!(missing.snapshots, vec![second.id], "{report:?}");
    assert!(!missing.snapshots.contains(&first.id));
    let err = s
        .reopen()
        .await
        .restore(
            &second.id,
            &s.path("r"),
            &RestoreOptions::default(),
            Progress::new(),
        )
        .await
        .unwrap_err();
    assert!(err.is_damage(), "{err}");
}
