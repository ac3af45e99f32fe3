//! Running dump and restore tools: a child's stdout as a stream that fails
//! when the child fails, and its stderr kept for the error message.

use std::io::Read;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::DumpError;

/// The last part of a child's stderr, collected by a thread (so a chatty
/// child never blocks on a full pipe).
#[derive(Clone, Default)]
pub(super) struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    fn collect(&self, mut stderr: impl Read + Send + 'static) {
        let buf = self.0.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut b = buf.lock().expect("stderr buffer");
                b.extend_from_slice(&chunk[..n]);
                let excess = b.len().saturating_sub(8192);
                b.drain(..excess);
            }
        });
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("stderr buffer"))
            .trim()
            .to_string()
    }
}

/// Spawn `cmd` with piped stdout and stderr.
pub(super) fn spawn(
    mut cmd: Command,
    tool: &str,
) -> Result<(Child, ChildStdout, StderrTail), DumpError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| missing_tool(tool, e))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let tail = StderrTail::default();
    tail.collect(child.stderr.take().expect("piped stderr"));
    Ok((child, stdout, tail))
}

pub(super) fn missing_tool(tool: &str, e: std::io::Error) -> DumpError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DumpError(format!(
            "{tool} is not installed (on Debian: apt-get install mariadb-client or postgresql-client)"
        ))
    } else {
        DumpError(format!("cannot run {tool}: {e}"))
    }
}

/// A child's stdout as a reader: at end of stream the child's exit status is
/// checked, and a failure becomes a read error carrying its stderr. Extra
/// values (a defaults file, a temporary copy) live as long as the reader.
pub(super) struct ChildReader<K: Send> {
    pub tool: String,
    pub child: Child,
    pub stdout: ChildStdout,
    pub stderr: StderrTail,
    pub _keep: K,
}

impl<K: Send> Read for ChildReader<K> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.wait()?;
            if !status.success() {
                // Give the stderr thread a moment to catch the last lines.
                std::thread::sleep(std::time::Duration::from_millis(50));
                return Err(std::io::Error::other(format!(
                    "{} failed ({status}): {}",
                    self.tool,
                    self.stderr.text()
                )));
            }
        }
        Ok(n)
    }
}

impl<K: Send> Drop for ChildReader<K> {
    fn drop(&mut self) {
        // Abandoned mid-stream (the backup failed elsewhere): stop the tool.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run `cmd` feeding `input` to its stdin; fail with its stderr if it fails.
pub(super) fn run_with_input(
    mut cmd: Command,
    tool: &str,
    input: &mut (dyn Read + Send),
) -> Result<(), DumpError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| missing_tool(tool, e))?;
    let tail = StderrTail::default();
    tail.collect(child.stderr.take().expect("piped stderr"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let copied = std::io::copy(input, &mut stdin);
    drop(stdin);
    let status = child
        .wait()
        .map_err(|e| DumpError(format!("{tool}: {e}")))?;
    std::thread::sleep(std::time::Duration::from_millis(20));
    if !status.success() {
        return Err(DumpError(format!(
            "{tool} failed ({status}): {}",
            tail.text()
        )));
    }
    copied.map_err(|e| DumpError(format!("feeding {tool}: {e}")))?;
    Ok(())
}

/// Run `cmd` to completion; fail with its stderr if it fails.
pub(super) fn run(mut cmd: Command, tool: &str) -> Result<(), DumpError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let out = cmd.output().map_err(|e| missing_tool(tool, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DumpError(format!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
