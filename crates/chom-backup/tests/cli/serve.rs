//! `chom-backup serve` as operators run it: real processes sharing one
//! PostgreSQL catalog and one repository, killed and stopped mid-job.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::util::{Home, noise, postgres_available};

const PG: &str = "postgres://postgres@127.0.0.1:5432";

/// A scratch PostgreSQL database, dropped at the end.
struct PgDatabase(String);

impl PgDatabase {
    fn create() -> Self {
        let name = format!(
            "chom_serve_test_{}_{}",
            std::process::id(),
            chom_backup::domain::random_u128() % 1_000_000
        );
        psql(&format!("CREATE DATABASE {name}"));
        PgDatabase(name)
    }

    fn url(&self) -> String {
        format!("{PG}/{}", self.0)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

fn psql(sql: &str) {
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A data directory on a PostgreSQL catalog, with an admin API token.
struct Setup {
    home: Home,
    token: String,
    _db: Option<PgDatabase>,
}

impl Setup {
    /// On a fresh PostgreSQL database.
    fn new() -> Self {
        let db = PgDatabase::create();
        let home = Home::uninitialized();
        home.ok(&["init", "--catalog", &db.url()]);
        Self::with_token(home, Some(db))
    }

    /// On the default SQLite catalog.
    fn sqlite() -> Self {
        Self::with_token(Home::new(), None)
    }

    fn with_token(home: Home, db: Option<PgDatabase>) -> Self {
        let token = home.json(&["token", "create", "panel", "--admin"])["token"]
            .as_str()
            .unwrap()
            .to_string();
        Setup {
            home,
            token,
            _db: db,
        }
    }

    /// A files-only site whose root holds `files` incompressible files of
    /// `size` bytes.
    fn site(&self, name: &str, files: usize, size: usize) {
        let root = self.home.path(name);
        std::fs::create_dir_all(&root).unwrap();
        for n in 0..files {
            std::fs::write(
                root.join(format!("f{n}.bin")),
                noise(size, (name.len() * 1000 + n) as u64),
            )
            .unwrap();
        }
        self.home
            .ok(&["site", "add", name, "--root", root.to_str().unwrap()]);
    }

    fn serve(&self, extra: &[&str]) -> Server {
        let mut child = self
            .home
            .command()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--tick",
                "1s",
                "--lease",
                "3s",
                "--no-prune",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        // Keep draining stderr so the server never blocks on a full pipe.
        let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
        Server {
            child,
            base,
            log: Some(log),
        }
    }
}

struct Server {
    child: Child,
    base: String,
    log: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for the process to exit; returns its exit code and log.
    fn wait(mut self, within: Duration) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log.take().unwrap().join().unwrap();
                return (status.code(), log);
            }
            assert!(
                Instant::now() < deadline,
                "server {} did not exit within {within:?}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP call with the admin token; returns the status and JSON body.
fn call(
    setup: &Setup,
    server: &Server,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", server.base);
        let mut request = client
            .request(method.parse().unwrap(), url)
            .bearer_auth(&setup.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

fn queue_backup(setup: &Setup, server: &Server, site: &str) -> (String, String) {
    let (status, body) = call(
        setup,
        server,
        "POST",
        &format!("/v1/sites/{site}/backups"),
        Some(json!({"type": "files"})),
    );
    assert_eq!(status, 202, "{body}");
    (
        body["job"]["id"].as_str().unwrap().to_string(),
        body["backup"]["id"].as_str().unwrap().to_string(),
    )
}

fn job(setup: &Setup, server: &Server, id: &str) -> Value {
    let (status, body) = call(setup, server, "GET", &format!("/v1/jobs/{id}"), None);
    assert_eq!(status, 200, "{body}");
    body
}

/// Poll a job until `done` holds for it.
fn wait_job(
    setup: &Setup,
    server: &Server,
    id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let job = job(setup, server, id);
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} stuck: {job}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finished(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

/// The process id in a worker id (`host:pid:n`).
fn pid_of(worker: &Value) -> u32 {
    let text = worker.as_str().unwrap();
    text.rsplit(':').nth(1).unwrap().parse().unwrap()
}

/// `backup.create` audit entries for `backup`.
fn audited_creations(setup: &Setup, backup: &str) -> Vec<Value> {
    let audit = setup.home.json(&["audit", "list", "--limit", "10000"]);
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "backup.create" && e["backup_id"] == backup)
        .cloned()
        .collect()
}

#[test]
fn two_servers_share_one_postgres_queue_and_run_each_job_once() {
    if !postgres_available() {
        return;
    }
    let setup = Setup::new();
    let sites: Vec<String> = (0..10).map(|n| format!("site{n}")).collect();
    for site in &sites {
        setup.site(site, 4, 1 << 20);
    }
    let a = setup.serve(&[]);
    let b = setup.serve(&[]);
    // Jobs come in through both servers; either may run any of them.
    let queued: Vec<(String, String)> = sites
        .iter()
        .enumerate()
        .map(|(n, site)| queue_backup(&setup, if n % 2 == 0 { &a } else { &b }, site))
        .collect();
    let mut ran_on = std::collections::BTreeSet::new();
    for (job_id, backup_id) in &queued {
        let job = wait_job(&setup, &a, job_id, Duration::from_secs(120), finished);
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["attempts"], 1, "no job runs twice: {job}");
        ran_on.insert(pid_of(&job["ran_by"]));
        let (_, backup) = call(&setup, &b, "GET", &format!("/v1/backups/{backup_id}"), None);
        assert_eq!(backup["status"], "completed", "{backup}");
        let creations = audited_creations(&setup, backup_id);
        assert_eq!(
            creations.len(),
            1,
            "one backup.create per backup: {creations:?}"
        );
    }
    assert_eq!(
        ran_on,
        [a.pid(), b.pid()].into_iter().collect(),
        "both servers took jobs from the shared queue"
    );
    for site in &sites {
        let (_, backups) = call(
            &setup,
            &a,
            "GET",
            &format!("/v1/sites/{site}/backups"),
            None,
        );
        assert_eq!(backups.as_array().unwrap().len(), 1, "{site}: {backups}");
    }
    a.signal("TERM");
    b.signal("TERM");
    assert_eq!(a.wait(Duration::from_secs(30)).0, Some(0));
    assert_eq!(b.wait(Duration::from_secs(30)).0, Some(0));
}

#[test]
fn a_job_of_a_killed_server_is_finished_by_another_once() {
    if !postgres_available() {
        return;
    }
    let setup = Setup::new();
    setup.site("big", 60, 5 << 20);
    let a = setup.serve(&[]);
    let (job_id, backup_id) = queue_backup(&setup, &a, "big");
    let running = wait_job(&setup, &a, &job_id, Duration::from_secs(60), |j| {
        j["status"] == "running" || finished(j)
    });
    assert_eq!(running["status"], "running", "{running}");
    std::thread::sleep(Duration::from_millis(300));
    a.signal("KILL");
    let _ = a.wait(Duration::from_secs(10));

    // The other server sees the lease run out, queues the job again after a
    // backoff, and runs the same backup to the end.
    let b = setup.serve(&[]);
    let job = wait_job(&setup, &b, &job_id, Duration::from_secs(120), finished);
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(pid_of(&job["ran_by"]), b.pid());
    let (_, backups) = call(&setup, &b, "GET", "/v1/sites/big/backups", None);
    let backups = backups.as_array().unwrap();
    assert_eq!(
        backups.len(),
        1,
        "one record, whatever happened: {backups:?}"
    );
    assert_eq!(backups[0]["id"], backup_id.as_str());
    assert_eq!(backups[0]["status"], "completed");
    let creations = audited_creations(&setup, &backup_id);
    assert_eq!(creations.len(), 1, "{creations:?}");
    assert_eq!(creations[0]["outcome"], "ok");

    // The repository is intact and the backup reads back whole.
    let verified = setup.home.json(&["backup", "verify", &backup_id, "--deep"]);
    assert_eq!(verified["valid"], true, "{verified}");
    b.signal("TERM");
    assert_eq!(b.wait(Duration::from_secs(30)).0, Some(0));
}

#[test]
fn sigterm_cuts_off_a_long_job_after_the_timeout_and_says_so() {
    if !postgres_available() {
        return;
    }
    let setup = Setup::new();
    setup.site("big", 60, 5 << 20);
    let a = setup.serve(&["--shutdown-timeout", "0s"]);
    let (job_id, backup_id) = queue_backup(&setup, &a, "big");
    let running = wait_job(&setup, &a, &job_id, Duration::from_secs(60), |j| {
        j["status"] == "running" || finished(j)
    });
    assert_eq!(running["status"], "running", "{running}");
    a.signal("TERM");
    let (code, log) = a.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{log:?}");
    assert!(log.iter().any(|l| l.contains("stopping")), "{log:?}");

    let b = setup.serve(&[]);
    let job = job(&setup, &b, &job_id);
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("shutdown"), "{job}");
    let (_, backup) = call(&setup, &b, "GET", &format!("/v1/backups/{backup_id}"), None);
    assert_eq!(backup["status"], "failed", "{backup}");
    // Nothing half-written is left behind: the repository checks clean.
    let repository = setup.home.path("home/repository");
    let key = setup.home.path("home/repository.key");
    setup.home.ok(&[
        "repo",
        "check",
        "--read-data",
        "--repo",
        repository.to_str().unwrap(),
        "--password-file",
        key.to_str().unwrap(),
    ]);
}

#[test]
fn a_backup_killed_outside_the_service_is_run_again_at_start_up() {
    let setup = Setup::sqlite();
    setup.site("big", 60, 5 << 20);
    let mut cli = setup
        .home
        .command()
        .args(["backup", "create", "big", "--type", "files"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let backup_id = loop {
        let list = setup.home.json(&["backup", "list", "--site", "big"]);
        if let Some(b) = list.as_array().unwrap().first() {
            assert_eq!(b["status"], "running", "{b}");
            break b["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the backup never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(300));
    cli.kill().unwrap();
    cli.wait().unwrap();

    // The service finds the record with no live process behind it and
    // queues it again, its first attempt counted.
    let server = setup.serve(&[]);
    let (_, jobs) = call(&setup, &server, "GET", "/v1/jobs", None);
    let job = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["request"]["backup"] == backup_id.as_str())
        .unwrap_or_else(|| panic!("no job for {backup_id}: {jobs}"))
        .clone();
    assert_eq!(job["actor"], "service");
    let id = job["id"].as_str().unwrap();
    let job = wait_job(&setup, &server, id, Duration::from_secs(120), finished);
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    let list = setup.home.json(&["backup", "list", "--site", "big"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "completed");
    let verified = setup.home.json(&["backup", "verify", &backup_id, "--deep"]);
    assert_eq!(verified["valid"], true, "{verified}");
}

/// Bad settings are refused before anything starts, naming the setting.
#[test]
fn serve_refuses_bad_settings_and_says_which() {
    let home = Home::new();
    for (args, expected) in [
        (&["serve", "--stale-factor", "0.5"][..], "between 1 and 100"),
        (
            &["serve", "--prune-schedule", "every tuesday"][..],
            "--prune-schedule",
        ),
        (
            &["serve", "--no-prune", "--prune-schedule", "weekly"][..],
            "cannot be used with",
        ),
    ] {
        let out = home.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // An address already taken is an error that names it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = home.run(&["serve", "--listen", &address]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
}
