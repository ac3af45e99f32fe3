//! The engine against a real S3-compatible server (`s3s-fs`) started on
//! loopback: round trip, check and prune. Skipped with a notice when the
//! server is not installed, unless `CI=true`, where it is required.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chom_repo::{
    CheckOptions, Progress, PruneOptions, ReadData, Repository, RestoreOptions, S3Config,
    S3Credentials, Storage,
};

use super::util::{PASSWORD, assert_same_tree, fast_init, noise, sample_tree};

struct S3Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_s3s() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("S3S_FS").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/s3s-fs")),
        Some(PathBuf::from("/usr/local/bin/s3s-fs")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

const ACCESS: &str = "chomtestaccess";
const SECRET: &str = "chomtestsecret-0123456789";

fn start() -> Option<S3Server> {
    let Some(bin) = find_s3s() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "s3s-fs is required on CI: cargo install s3s-fs --version 0.14.1 --locked --features binary"
            );
        }
        eprintln!(
            "notice: s3s-fs not installed; skipping the S3 test (cargo install s3s-fs --version 0.14.1 --locked --features binary)"
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("backups")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            ACCESS,
            "--secret-key",
            SECRET,
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start s3s-fs");
    let server = S3Server {
        child,
        port,
        _dir: dir,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(server);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
    panic!("s3s-fs did not start listening");
}

fn storage(server: &S3Server, secret: &str) -> Storage {
    Storage::s3(&S3Config {
        bucket: "backups".into(),
        prefix: "repos/site-a".into(),
        endpoint: Some(format!("http://127.0.0.1:{}", server.port)),
        region: Some("us-east-1".into()),
        credentials: Some(S3Credentials {
            access_key_id: ACCESS.into(),
            secret_access_key: secret.into(),
            session_token: None,
        }),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_check_and_prune_on_s3() {
    let Some(server) = start() else { return };
    let mut opts = fast_init();
    opts.pack_size = 1024 * 1024;
    let repo = Repository::init(storage(&server, SECRET), Some(PASSWORD), opts)
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let src = scratch.path().join("site");
    sample_tree(&src, 31);
    let first = repo
        .backup(
            vec![chom_repo::Source::path(&src)],
            &Default::default(),
            Progress::new(),
        )
        .await
        .unwrap();
    std::fs::write(src.join("more.bin"), noise(2_500_000, 3)).unwrap();
    let second = repo
        .backup(
            vec![chom_repo::Source::path(&src)],
            &Default::default(),
            Progress::new(),
        )
        .await
        .unwrap();
    assert_eq!(second.snapshot.summary.files_unchanged, 4);

    let repo = Repository::open(storage(&server, SECRET), Some(PASSWORD))
        .await
        .unwrap();
    let out = scratch.path().join("out");
    repo.restore(
        &second.id,
        &out,
        &RestoreOptions::default(),
        Progress::new(),
    )
    .await
    .unwrap();
    assert_same_tree(&src, &out.join("site"));

    repo.forget(&[second.id]).await.unwrap();
    let mut p = PruneOptions::default();
    p.grace = Duration::ZERO;
    let report = repo.prune(&p, Progress::new()).await.unwrap();
    assert!(report.packs_deleted > 0, "{report:?}");
    let mut c = CheckOptions::default();
    c.read_data = ReadData::All;
    let check = repo.check(&c, Progress::new()).await.unwrap();
    assert!(check.is_ok(), "{check:?}");
    let out1 = scratch.path().join("out1");
    repo.restore(
        &first.id,
        &out1,
        &RestoreOptions::default(),
        Progress::new(),
    )
    .await
    .unwrap();
    std::fs::remove_file(src.join("more.bin")).unwrap();
    assert_same_tree(&src, &out1.join("site"));

    // Wrong credentials: a clear error, not a hang.
    let err = Repository::open(storage(&server, "not-the-secret"), Some(PASSWORD))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            chom_repo::Error::StorageUnreachable { .. } | chom_repo::Error::Storage { .. }
        ),
        "{err}"
    );
}
