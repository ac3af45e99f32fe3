//! PostgreSQL: `pg_dump --format=custom` out, `pg_restore` in. The password
//! goes to the tools in `PGPASSWORD`, never on their command line.

use std::io::Read;
use std::process::Command;

use super::DumpError;
use super::process::{ChildReader, run, run_with_input, spawn};
use crate::domain::{DatabaseSpec, DbLocation};

fn tool(name: &str, spec: &DatabaseSpec) -> Result<Command, DumpError> {
    let mut cmd = Command::new(name);
    cmd.arg("--no-password");
    match &spec.location {
        DbLocation::Tcp { host, port } => {
            cmd.arg("--host")
                .arg(host)
                .arg("--port")
                .arg(port.to_string());
        }
        // libpq takes the socket's directory as the host.
        DbLocation::Socket { path } => {
            let dir = if path.is_dir() {
                path.as_path()
            } else {
                path.parent().unwrap_or(path)
            };
            cmd.arg("--host").arg(dir);
        }
        DbLocation::File { .. } => {
            return Err(DumpError("a PostgreSQL site needs a host or socket".into()));
        }
    }
    if let Some(user) = &spec.user {
        cmd.arg("--username").arg(user);
    }
    cmd.env_remove("PGPASSWORD");
    if let Some(password) = &spec.password {
        let secret = password.resolve().map_err(|e| DumpError(e.to_string()))?;
        cmd.env("PGPASSWORD", secret);
    }
    Ok(cmd)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Start `pg_dump` (custom format: compressed by the repository, restorable
/// selectively with `pg_restore`).
pub(super) fn dump(spec: &DatabaseSpec) -> Result<impl std::io::Read + Send + use<>, DumpError> {
    let mut cmd = tool("pg_dump", spec)?;
    cmd.args(["--format=custom", "--compress=0", "--dbname"])
        .arg(&spec.name);
    let (child, stdout, stderr) = spawn(cmd, "pg_dump")?;
    Ok(ChildReader {
        tool: "pg_dump".into(),
        child,
        stdout,
        stderr,
        _keep: (),
    })
}

/// Recreate the database empty (through the `postgres` maintenance
/// database), then restore the dump into it in one transaction.
pub(super) fn restore(spec: &DatabaseSpec, dump: &mut (dyn Read + Send)) -> Result<(), DumpError> {
    let db = quote_ident(&spec.name);
    for statement in [
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        format!("CREATE DATABASE {db}"),
    ] {
        let mut psql = tool("psql", spec)?;
        psql.args([
            "--dbname",
            "postgres",
            "--quiet",
            "--set",
            "ON_ERROR_STOP=1",
            "--command",
        ])
        .arg(statement);
        run(psql, "psql")?;
    }
    let mut cmd = tool("pg_restore", spec)?;
    cmd.args([
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        "--dbname",
    ])
    .arg(&spec.name);
    run_with_input(cmd, "pg_restore", dump)
}

/// Connect and run `SELECT 1`.
pub(super) fn probe(spec: &DatabaseSpec) -> Result<(), DumpError> {
    let mut psql = tool("psql", spec)?;
    psql.args([
        "--quiet",
        "--set",
        "ON_ERROR_STOP=1",
        "--command",
        "SELECT 1",
        "--dbname",
    ])
    .arg(&spec.name);
    run(psql, "psql")
}
