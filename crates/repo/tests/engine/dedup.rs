//! Deduplication: unchanged data adds (almost) nothing; a one-byte change in
//! a large file adds about one chunk.

use std::fs;
use std::io::{Seek, SeekFrom, Write};

use chom_repo::{BackupOptions, ParentSelection, Progress, Source};

use super::util::{Scratch, dir_size, noise};

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_data_adds_under_one_percent_and_one_byte_adds_one_chunk() {
    let s = Scratch::new().await;
    let src = s.path("data");
    fs::create_dir_all(&src).unwrap();
    let size = 100 * 1024 * 1024;
    fs::write(src.join("big.bin"), noise(size, 42)).unwrap();
    let mut small_bytes = 0;
    for i in 0..50 {
        let text = format!("file {i}\n").repeat(100);
        small_bytes += text.len();
        fs::write(src.join(format!("small-{i}.txt")), text).unwrap();
    }
    s.backup(&src).await;
    let after_first = dir_size(&s.repo_dir());

    // Re-reading everything (no parent) must still store almost nothing.
    let mut opts = BackupOptions::default();
    opts.parent = ParentSelection::None;
    let again = s
        .repo
        .backup(vec![Source::path(&src)], &opts, Progress::new())
        .await
        .unwrap();
    assert_eq!(
        again.snapshot.summary.bytes_read as usize,
        size + small_bytes
    );
    let after_second = dir_size(&s.repo_dir());
    let growth = (after_second - after_first) as f64 / after_first as f64;
    assert!(
        growth < 0.01,
        "an unchanged backup grew the repository by {:.3}%",
        growth * 100.0
    );

    // One byte in the middle of the 100 MiB file.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(src.join("big.bin"))
        .unwrap();
    f.seek(SeekFrom::Start(size as u64 / 2)).unwrap();
    f.write_all(&[0xAB]).unwrap();
    drop(f);
    let changed = s.backup(&src).await;
    let added = changed.snapshot.summary.bytes_added;
    let max_chunk = s.repo.config().chunker.max_size as u64;
    assert!(added > 0);
    // One new chunk (at most two if the byte lands on a boundary), plus trees.
    assert!(
        added <= 2 * max_chunk + 64 * 1024,
        "a one-byte change added {added} bytes"
    );
    let after_third = dir_size(&s.repo_dir());
    assert!(after_third - after_second <= 2 * max_chunk + 256 * 1024);
    assert_eq!(changed.snapshot.summary.files_changed, 1);
}
