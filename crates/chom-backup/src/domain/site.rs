//! `Site`: a document root and, usually, a database.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::DomainError;

/// A site's id: a ULID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SiteId(pub ulid::Ulid);

impl SiteId {
    /// A new id.
    pub fn new(at: Timestamp) -> Self {
        SiteId(ulid::Ulid::from_parts(
            at.as_millisecond().max(0) as u64,
            super::backup::random_u128(),
        ))
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SiteId {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        ulid::Ulid::from_string(s)
            .map(SiteId)
            .map_err(|_| DomainError::new("site", format!("{s:?} is not a site id")))
    }
}

/// Database engines a site can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbEngine {
    /// A SQLite file.
    Sqlite,
    /// MariaDB or MySQL.
    Mysql,
    /// PostgreSQL.
    Postgres,
}

impl DbEngine {
    /// The text form.
    pub fn as_str(self) -> &'static str {
        match self {
            DbEngine::Sqlite => "sqlite",
            DbEngine::Mysql => "mysql",
            DbEngine::Postgres => "postgres",
        }
    }
}

impl FromStr for DbEngine {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s {
            "sqlite" => Ok(DbEngine::Sqlite),
            "mysql" | "mariadb" => Ok(DbEngine::Mysql),
            "postgres" | "postgresql" => Ok(DbEngine::Postgres),
            other => Err(DomainError::new(
                "db",
                format!("unknown database engine {other:?}: use sqlite, mysql or postgres"),
            )),
        }
    }
}

/// Where a database is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DbLocation {
    /// A SQLite file.
    File {
        /// Path of the database file.
        path: PathBuf,
    },
    /// A server over TCP.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A server over a Unix socket.
    Socket {
        /// Socket path.
        path: PathBuf,
    },
}

/// Where a database password is found. Only the reference is stored; the
/// secret is read when needed and never stored, logged or printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordRef {
    /// A file whose first line is the password.
    File(PathBuf),
    /// An environment variable of the chom-backup process.
    Env(String),
}

impl fmt::Display for PasswordRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordRef::File(p) => write!(f, "file:{}", p.display()),
            PasswordRef::Env(v) => write!(f, "env:{v}"),
        }
    }
}

impl FromStr for PasswordRef {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        if let Some(path) = s.strip_prefix("file:") {
            Ok(PasswordRef::File(PathBuf::from(path)))
        } else if let Some(var) = s.strip_prefix("env:") {
            Ok(PasswordRef::Env(var.to_string()))
        } else {
            Err(DomainError::new(
                "db_password",
                format!("{s:?} is not a password reference (file:PATH or env:VAR)"),
            ))
        }
    }
}

impl PasswordRef {
    /// Read the secret. The error names the reference, never the secret.
    pub fn resolve(&self) -> Result<String, DomainError> {
        match self {
            PasswordRef::File(path) => std::fs::read_to_string(path)
                .map(|s| s.lines().next().unwrap_or_default().to_string())
                .map_err(|e| DomainError::new("db_password", format!("cannot read the database password file {}: {e}", path.display()))),
            PasswordRef::Env(var) => std::env::var(var).map_err(|_| {
                DomainError::new("db_password", format!("the database password variable {var} is not set in chom-backup's environment"))
            }),
        }
    }
}

/// A site's database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSpec {
    /// Engine.
    pub engine: DbEngine,
    /// File, host and port, or socket.
    pub location: DbLocation,
    /// Database name (for SQLite, the file's name).
    pub name: String,
    /// User to connect as.
    pub user: Option<String>,
    /// Where the password is.
    pub password: Option<PasswordRef>,
}

impl DatabaseSpec {
    /// Parse `sqlite:PATH`, `mysql://USER@HOST:PORT/DB`,
    /// `postgres://USER@HOST:PORT/DB`, or with a socket
    /// `mysql://USER@/DB?socket=/run/mysqld/mysqld.sock`. A URL holding a
    /// password is refused: passwords are referenced, never stored.
    pub fn parse(url: &str, password: Option<PasswordRef>) -> Result<Self, DomainError> {
        let err = |m: String| DomainError::new("db", m);
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err(err(
                    "sqlite: needs the database file's path, e.g. sqlite:/var/www/site/db.sqlite"
                        .into(),
                ));
            }
            let path = PathBuf::from(path);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "database".into());
            return Ok(DatabaseSpec {
                engine: DbEngine::Sqlite,
                location: DbLocation::File { path },
                name,
                user: None,
                password: None,
            });
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| err(format!("{url:?} is not a database URL: use sqlite:PATH, mysql://USER@HOST:PORT/DB or postgres://USER@HOST:PORT/DB")))?;
        let engine: DbEngine = scheme.parse()?;
        if engine == DbEngine::Sqlite {
            return Err(err("use sqlite:PATH for SQLite databases".into()));
        }
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, db) = main
            .split_once('/')
            .ok_or_else(|| err(format!("{url:?} names no database: add /DBNAME")))?;
        if db.is_empty() || db.contains('/') {
            return Err(err(format!(
                "{url:?}: the database name after the host must be one name"
            )));
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hp)) => (Some(user), hp),
            None => (None, authority),
        };
        if let Some(user) = user
            && user.contains(':')
        {
            return Err(err(
                "the database URL holds a password: remove it and use --db-password-file FILE or --db-password-env VAR".into(),
            ));
        }
        let mut socket = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("socket", path)) => socket = Some(PathBuf::from(path)),
                _ => {
                    return Err(err(format!(
                        "unknown option {pair:?} in the database URL (only socket=PATH)"
                    )));
                }
            }
        }
        let location = match socket {
            Some(path) => DbLocation::Socket { path },
            None => {
                let default_port = if engine == DbEngine::Mysql {
                    3306
                } else {
                    5432
                };
                let (host, port) = match hostport.rsplit_once(':') {
                    Some((h, p)) => (
                        h,
                        p.parse::<u16>().map_err(|_| {
                            err(format!("port {p:?} in the database URL is not a number"))
                        })?,
                    ),
                    None => (hostport, default_port),
                };
                if host.is_empty() {
                    return Err(err(format!("{url:?} names no host (or give ?socket=PATH)")));
                }
                DbLocation::Tcp {
                    host: host.to_string(),
                    port,
                }
            }
        };
        Ok(DatabaseSpec {
            engine,
            location,
            name: db.to_string(),
            user: user.filter(|u| !u.is_empty()).map(str::to_string),
            password,
        })
    }

    /// The spec as a URL again (without any password).
    pub fn url(&self) -> String {
        match (&self.engine, &self.location) {
            (_, DbLocation::File { path }) => format!("sqlite:{}", path.display()),
            (engine, DbLocation::Tcp { host, port }) => format!(
                "{}://{}{host}:{port}/{}",
                engine.as_str(),
                self.user
                    .as_ref()
                    .map(|u| format!("{u}@"))
                    .unwrap_or_default(),
                self.name
            ),
            (engine, DbLocation::Socket { path }) => format!(
                "{}://{}/{}?socket={}",
                engine.as_str(),
                self.user
                    .as_ref()
                    .map(|u| format!("{u}@"))
                    .unwrap_or_default(),
                self.name,
                path.display()
            ),
        }
    }
}

/// A hosted site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// Its id.
    pub id: SiteId,
    /// Unique, human name (`blog`, `shop-example-com`).
    pub name: String,
    /// The document root.
    pub root: PathBuf,
    /// Exclude patterns for file backups.
    pub excludes: Vec<String>,
    /// Its database, if any.
    pub database: Option<DatabaseSpec>,
    /// IANA time zone of schedules and calendar retention (default UTC).
    pub timezone: String,
    /// When it was added.
    pub created_at: Timestamp,
}

/// Check a site name: 1 to 63 characters, lowercase letters, digits, `.`,
/// `_` and `-`, starting with a letter or digit.
pub fn validate_site_name(name: &str) -> Result<(), DomainError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(DomainError::new(
            "name",
            format!(
                "site name {name:?} is invalid: use 1 to 63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        let m = DatabaseSpec::parse(
            "mysql://wp@127.0.0.1:3306/blog",
            Some(PasswordRef::Env("DB_PW".into())),
        )
        .unwrap();
        assert_eq!(m.engine, DbEngine::Mysql);
        assert_eq!(
            m.location,
            DbLocation::Tcp {
                host: "127.0.0.1".into(),
                port: 3306
            }
        );
        assert_eq!((m.name.as_str(), m.user.as_deref()), ("blog", Some("wp")));
        assert_eq!(m.url(), "mysql://wp@127.0.0.1:3306/blog");
        let p = DatabaseSpec::parse("postgres://app@db.internal/shop", None).unwrap();
        assert_eq!(
            p.location,
            DbLocation::Tcp {
                host: "db.internal".into(),
                port: 5432
            }
        );
        let s =
            DatabaseSpec::parse("mariadb://root@/wp?socket=/run/mysqld/mysqld.sock", None).unwrap();
        assert_eq!(
            s.location,
            DbLocation::Socket {
                path: "/run/mysqld/mysqld.sock".into()
            }
        );
        let l = DatabaseSpec::parse("sqlite:/var/www/app/db.sqlite", None).unwrap();
        assert_eq!(l.engine, DbEngine::Sqlite);
        assert_eq!(l.name, "db.sqlite");
        for bad in [
            "mysql://wp:secret@host/db",
            "oracle://x@h/db",
            "mysql://wp@host",
            "mysql://wp@host:xx/db",
            "sqlite:",
            "blog",
        ] {
            assert!(DatabaseSpec::parse(bad, None).is_err(), "{bad} accepted");
        }
        let err = DatabaseSpec::parse("mysql://wp:hunter2@host/db", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--db-password-file") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn password_references_resolve_without_leaking() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\nignored\n").unwrap();
        assert_eq!(PasswordRef::File(f.clone()).resolve().unwrap(), "s3cret");
        assert_eq!(
            format!("{}", PasswordRef::File(f)),
            format!("file:{}", dir.path().join("pw").display())
        );
        let err = PasswordRef::Env("CHOM_TEST_SURELY_UNSET".into())
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("CHOM_TEST_SURELY_UNSET"));
        assert_eq!(
            "env:X".parse::<PasswordRef>().unwrap(),
            PasswordRef::Env("X".into())
        );
    }

    #[test]
    fn site_names() {
        for ok in ["blog", "shop-example-com", "a", "site_2.old"] {
            assert!(validate_site_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Blog", "-x", "a b", "x/y", &"a".repeat(64)] {
            assert!(validate_site_name(bad).is_err(), "{bad}");
        }
    }
}
