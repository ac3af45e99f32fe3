//! MariaDB / MySQL: `mariadb-dump` (or `mysqldump`) out, `mariadb` (or
//! `mysql`) in. Credentials travel in a private defaults file.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use tempfile::NamedTempFile;

use super::DumpError;
use super::process::{ChildReader, run, run_with_input, spawn};
use crate::domain::{DatabaseSpec, DbLocation};

/// The first of `names` found on the PATH.
pub(super) fn find_tool(names: &[&str]) -> Result<String, DumpError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        if std::env::split_paths(&path).any(|dir| dir.join(name).is_file()) {
            return Ok((*name).to_string());
        }
    }
    Err(DumpError(format!(
        "none of {} is installed (on Debian: apt-get install mariadb-client)",
        names.join(", ")
    )))
}

/// Quote a value for an option file.
fn option_value(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// Write a `[client]` defaults file readable by this user only.
fn defaults_file(spec: &DatabaseSpec, scratch: &Path) -> Result<NamedTempFile, DumpError> {
    let mut text = String::from("[client]\n");
    if let Some(user) = &spec.user {
        text.push_str(&format!("user={}\n", option_value(user)));
    }
    if let Some(password) = &spec.password {
        let secret = password.resolve().map_err(|e| DumpError(e.to_string()))?;
        text.push_str(&format!("password={}\n", option_value(&secret)));
    }
    match &spec.location {
        DbLocation::Tcp { host, port } => {
            text.push_str(&format!(
                "host={}\nport={port}\nprotocol=tcp\n",
                option_value(host)
            ));
        }
        DbLocation::Socket { path } => {
            text.push_str(&format!(
                "socket={}\n",
                option_value(&path.to_string_lossy())
            ));
        }
        DbLocation::File { .. } => {
            return Err(DumpError(
                "a MariaDB/MySQL site needs a host or socket".into(),
            ));
        }
    }
    std::fs::create_dir_all(scratch)
        .map_err(|e| DumpError(format!("cannot create {}: {e}", scratch.display())))?;
    // NamedTempFile creates the file with mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix("client-")
        .suffix(".cnf")
        .tempfile_in(scratch)
        .map_err(|e| {
            DumpError(format!(
                "cannot create a defaults file in {}: {e}",
                scratch.display()
            ))
        })?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.flush())
        .map_err(|e| DumpError(format!("cannot write the defaults file: {e}")))?;
    Ok(file)
}

fn client(tool: &str, defaults: &NamedTempFile) -> Command {
    let mut cmd = Command::new(tool);
    // Must be the first argument.
    cmd.arg(format!(
        "--defaults-extra-file={}",
        defaults.path().display()
    ));
    cmd
}

fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Start `mariadb-dump` on the site's database.
pub(super) fn dump(
    spec: &DatabaseSpec,
    scratch: &Path,
) -> Result<impl Read + Send + use<>, DumpError> {
    let tool = find_tool(&["mariadb-dump", "mysqldump"])?;
    let defaults = defaults_file(spec, scratch)?;
    let mut cmd = client(&tool, &defaults);
    cmd.args([
        "--single-transaction",
        "--quick",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--no-tablespaces",
        "--default-character-set=utf8mb4",
    ])
    .arg(&spec.name);
    let (child, stdout, stderr) = spawn(cmd, &tool)?;
    Ok(ChildReader {
        tool,
        child,
        stdout,
        stderr,
        _keep: defaults,
    })
}

/// Recreate the database empty, then load the dump into it.
pub(super) fn restore(
    spec: &DatabaseSpec,
    dump: &mut (dyn Read + Send),
    scratch: &Path,
) -> Result<(), DumpError> {
    let tool = find_tool(&["mariadb", "mysql"])?;
    let defaults = defaults_file(spec, scratch)?;
    let db = quote_ident(&spec.name);
    let mut reset = client(&tool, &defaults);
    reset.arg("-e").arg(format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    ));
    run(reset, &tool)?;
    let mut load = client(&tool, &defaults);
    load.arg("--binary-mode").arg(&spec.name);
    run_with_input(load, &tool, dump)
}

/// Connect and run `SELECT 1` against the database.
pub(super) fn probe(spec: &DatabaseSpec, scratch: &Path) -> Result<(), DumpError> {
    let tool = find_tool(&["mariadb", "mysql"])?;
    let defaults = defaults_file(spec, scratch)?;
    let mut cmd = client(&tool, &defaults);
    cmd.arg("-e").arg("SELECT 1").arg(&spec.name);
    run(cmd, &tool)
}
