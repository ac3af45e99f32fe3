//! Helpers: run the binary with a clean environment against a scratch repository.

use std::path::{Path, PathBuf};
use std::process::Output;

pub const PASSWORD: &str = "cli test password";

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chom-backup"))
}

/// A scratch directory with a repository path and a password file.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
        Env { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// A command with no inherited CHOM_BACKUP_* settings, so a test never
    /// touches a real repository.
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(binary());
        for (key, _) in std::env::vars() {
            if key.starts_with("CHOM_BACKUP_") || key.starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("CHOM_BACKUP_REPOSITORY", self.repo())
            .env("CHOM_BACKUP_PASSWORD", PASSWORD)
            .env("CHOM_BACKUP_LOG", "warn");
        cmd
    }

    /// Run `chom-backup ARGS` and return its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "chom-backup {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run with --json and parse stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

/// Deterministic incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Recursively compare two trees' file contents and names.
pub fn same_content(a: &Path, b: &Path) -> bool {
    let status = std::process::Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    status.status.success()
}

/// A data directory for the site-level commands (`chom-backup init` done).
pub struct Home {
    pub env: Env,
}

impl Home {
    pub fn new() -> Self {
        let home = Self::uninitialized();
        home.ok(&["init"]);
        home
    }

    /// A data directory not yet created (run `init` with options).
    pub fn uninitialized() -> Self {
        Home { env: Env::new() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.env.path(name)
    }

    pub fn command(&self) -> std::process::Command {
        let mut cmd = self.env.command();
        cmd.env_remove("CHOM_BACKUP_REPOSITORY")
            .env_remove("CHOM_BACKUP_PASSWORD")
            .env("CHOM_BACKUP_HOME", self.path("home"));
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    pub fn run_at(&self, now: &str, args: &[&str]) -> Output {
        self.command()
            .env("CHOM_BACKUP_NOW", now)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "chom-backup {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Run expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "chom-backup {args:?} should have failed"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Whether a database server is reachable; without it the test is skipped
/// with a notice, unless CI=true, where it is required.
pub fn database_available(what: &str, probe: &[&str]) -> bool {
    let ok = std::process::Command::new(probe[0])
        .args(&probe[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{what} is required on CI (127.0.0.1, see .ci/run)");
        }
        eprintln!("notice: {what} not reachable; skipping");
    }
    ok
}

pub fn mariadb_available() -> bool {
    database_available(
        "MariaDB",
        &["mariadb", "-h", "127.0.0.1", "-u", "root", "-e", "SELECT 1"],
    )
}

pub fn postgres_available() -> bool {
    database_available(
        "PostgreSQL",
        &[
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "SELECT 1",
        ],
    )
}

/// Run SQL on MariaDB as root; returns the tab-separated output.
pub fn mariadb(sql: &str) -> String {
    let out = std::process::Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-u", "root", "-N", "-B", "-e", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mariadb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run SQL on a PostgreSQL database as postgres; returns unaligned output.
pub fn psql(db: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A unique database name for a test.
pub fn db_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Flip one byte of the biggest data pack of the home's repository (the one
/// holding the most data).
pub fn damage_biggest_pack(home: &Home) {
    let mut packs = files_under(&home.path("home/repository/data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let pack = packs.last().expect("a data pack");
    let mut bytes = std::fs::read(pack).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(pack, bytes).unwrap();
}

/// Flip a byte every 256 KiB of every pack of the home's repository, so
/// every blob of at least that size — every chunk of a large file — is
/// damaged, whichever pack and position it landed in.
pub fn damage_every_pack(home: &Home) {
    for pack in files_under(&home.path("home/repository/data")) {
        let mut bytes = std::fs::read(&pack).unwrap();
        for at in (0..bytes.len()).step_by(256 << 10) {
            bytes[at] ^= 0xff;
        }
        std::fs::write(&pack, bytes).unwrap();
    }
}
