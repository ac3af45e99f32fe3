//! Crash safety: a backup killed with SIGKILL at random moments, many times,
//! leaves a repository that passes check and whose earlier snapshot restores
//! exactly; a later complete backup and prune clean up what the kills left.

use std::time::{Duration, Instant};

use super::util::{Env, noise, same_content};

fn make_site(dir: &std::path::Path, seed: u64) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("uploads")).unwrap();
    for i in 0..24 {
        std::fs::write(
            dir.join(format!("uploads/img-{i}.jpg")),
            noise(1_500_000, seed * 1000 + i),
        )
        .unwrap();
    }
    let dump: String = (0..200_000)
        .map(|i| format!("INSERT INTO t VALUES ({i}, {seed}, 'row text');\n"))
        .collect();
    std::fs::write(dir.join("dump.sql"), dump).unwrap();
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn killed_backups_never_damage_the_repository() {
    let env = Env::new();
    env.ok(&["repo", "init", "--pack-size", "1"]);
    let site = env.path("site");
    make_site(&site, 1);
    let started = Instant::now();
    let baseline = env.json(&["repo", "backup", site.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    // How long a backup of all-new data takes here: kills land inside that.
    let full = started.elapsed();
    let baseline_copy = env.path("baseline-copy");
    assert!(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&site)
            .arg(&baseline_copy)
            .status()
            .unwrap()
            .success()
    );

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Lcg(seed);
    let mut killed = 0;
    for round in 0..12 {
        // New content every round, so each killed backup is uploading.
        make_site(&site, round + 2);
        let mut child = env
            .command()
            .args(["repo", "backup", "--force", site.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = full.mul_f64(0.02 + rng.next(93) as f64 / 100.0);
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            // SIGKILL: no chance to clean up.
            unsafe_kill(child.id());
            killed += 1;
        }
        child.wait().unwrap();
        let args: &[&str] = if round % 4 == 3 {
            &["repo", "check", "--read-data"]
        } else {
            &["repo", "check"]
        };
        let out = env.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round} (killed after {delay:?}): check failed\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(
        killed >= 6,
        "only {killed} of 12 backups were killed mid-way"
    );

    let target = env.path("restore-baseline");
    env.ok(&[
        "repo",
        "restore",
        &baseline,
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(
        same_content(&baseline_copy, &target.join("site")),
        "the earlier snapshot changed"
    );

    // A complete backup now succeeds, and prune removes the leftovers.
    env.ok(&["repo", "backup", site.to_str().unwrap()]);
    env.ok(&["repo", "prune", "--grace", "0"]);
    env.ok(&["repo", "check", "--read-data"]);
    let latest = env.path("restore-latest");
    env.ok(&[
        "repo",
        "restore",
        "latest",
        "--target",
        latest.to_str().unwrap(),
    ]);
    assert!(same_content(&site, &latest.join("site")));
}

fn unsafe_kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
