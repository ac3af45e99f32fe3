//! Where repository objects live: local disk or S3-compatible object storage,
//! both through OpenDAL.
//!
//! Durability contract the rest of the engine relies on:
//! * a `write` is all-or-nothing: a reader sees either no object or the whole
//!   object (S3 PUTs are atomic; on local disk OpenDAL writes a temporary file
//!   under `tmp/`, syncs it and renames it into place);
//! * objects are never modified after they are written; they are named by the
//!   hash of their bytes, so writing the same name twice writes the same bytes
//!   and a retried upload is harmless;
//! * transient failures are retried with exponential backoff (OpenDAL's retry
//!   layer) before an error reaches the caller.

use std::time::Duration;

use opendal::layers::RetryLayer;
use opendal::{ErrorKind as DalErrorKind, Operator};

use crate::error::{Error, Result};
use crate::id::Id;

/// The kinds of objects in a repository, each under its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// Password key slots, `keys/<id>`.
    Key,
    /// Pack files, `data/<first two hex digits>/<id>`.
    Pack,
    /// Index files, `index/<id>`.
    Index,
    /// Snapshots, `snapshots/<id>`.
    Snapshot,
    /// Locks, `locks/<id>`.
    Lock,
}

impl ObjectKind {
    /// The directory prefix of this kind, with a trailing slash.
    pub fn dir(self) -> &'static str {
        match self {
            ObjectKind::Key => "keys/",
            ObjectKind::Pack => "data/",
            ObjectKind::Index => "index/",
            ObjectKind::Snapshot => "snapshots/",
            ObjectKind::Lock => "locks/",
        }
    }

    /// The storage path of object `id`.
    pub fn path(self, id: &Id) -> String {
        let hex = id.to_hex();
        match self {
            ObjectKind::Pack => format!("data/{}/{}", &hex[..2], hex),
            _ => format!("{}{}", self.dir(), hex),
        }
    }

    /// A name for people: `pack 3fa1c2d4`.
    pub fn describe(self, id: &Id) -> String {
        let noun = match self {
            ObjectKind::Key => "key slot",
            ObjectKind::Pack => "pack",
            ObjectKind::Index => "index",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Lock => "lock",
        };
        format!("{noun} {}", id.short())
    }
}

/// Path of the config object.
pub const CONFIG_PATH: &str = "config";
/// Directory of temporary files on local disk (partial writes of killed processes).
pub const TMP_DIR: &str = "tmp/";

/// Settings of S3-compatible storage.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix of the repository inside the bucket.
    pub prefix: String,
    /// Endpoint URL of an S3-compatible server (default: AWS).
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Static credentials; `None` uses the AWS default chain.
    pub credentials: Option<S3Credentials>,
}

/// Static S3 credentials.
#[derive(Clone, Default)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// An object found by listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedObject {
    /// Its id (parsed from the name).
    pub id: Id,
    /// Its size in bytes.
    pub size: u64,
}

/// A repository's storage: an OpenDAL operator plus a printable location.
#[derive(Clone, Debug)]
pub struct Storage {
    op: Operator,
    location: String,
    /// Concurrent uploads that pay off on this backend.
    pub(crate) upload_concurrency: usize,
}

fn retry_layer() -> RetryLayer {
    RetryLayer::new()
        .with_max_times(6)
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
}

impl Storage {
    /// Open the storage named by `url`: a path, `file://PATH`, or
    /// `s3://BUCKET[/PREFIX][?endpoint=URL&region=R]`. S3 credentials, region
    /// and endpoint come from the standard AWS environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION` or `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`); the URL's
    /// query overrides the endpoint and region.
    ///
    /// With `create` false a local path must already exist, so that a typo
    /// never leaves an empty directory behind.
    pub fn open(url: &str, create: bool) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("s3://") {
            return Self::open_s3(url, rest);
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.is_empty() {
            return Err(Error::InvalidInput(
                "no repository given: pass --repo URL or set CHOM_BACKUP_REPOSITORY".into(),
            ));
        }
        if url.contains("://") && !url.starts_with("file://") {
            return Err(Error::InvalidInput(format!(
                "unsupported repository URL {url:?}: use a path, file://PATH or s3://BUCKET/PREFIX"
            )));
        }
        let root = std::path::absolute(path).map_err(|e| Error::io("resolving", path, e))?;
        if !create && !root.join(CONFIG_PATH).exists() {
            return Err(Error::NotARepository {
                location: root.display().to_string(),
            });
        }
        let root_str = root.to_string_lossy().to_string();
        let builder = opendal::services::Fs::default()
            .root(&root_str)
            .atomic_write_dir(&root.join(TMP_DIR).to_string_lossy());
        let op = Operator::new(builder)
            .map_err(|e| Error::StorageUnreachable {
                location: root_str.clone(),
                cause: e.to_string(),
            })?
            .layer(retry_layer());
        Ok(Storage {
            op,
            location: root_str,
            upload_concurrency: 2,
        })
    }

    fn open_s3(url: &str, rest: &str) -> Result<Self> {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(Error::InvalidInput(format!(
                "S3 URL {url:?} names no bucket: use s3://BUCKET/PREFIX"
            )));
        }
        let mut config = S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: env_nonempty("AWS_ENDPOINT_URL_S3")
                .or_else(|| env_nonempty("AWS_ENDPOINT_URL")),
            region: env_nonempty("AWS_REGION").or_else(|| env_nonempty("AWS_DEFAULT_REGION")),
            credentials: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", v)) => config.endpoint = Some(v.to_string()),
                Some(("region", v)) => config.region = Some(v.to_string()),
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "unknown option {pair:?} in S3 URL: only endpoint=URL and region=NAME are understood"
                    )));
                }
            }
        }
        match (
            env_nonempty("AWS_ACCESS_KEY_ID"),
            env_nonempty("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(access_key_id), Some(secret_access_key)) => {
                config.credentials = Some(S3Credentials {
                    access_key_id,
                    secret_access_key,
                    session_token: env_nonempty("AWS_SESSION_TOKEN"),
                });
            }
            (None, None) => {}
            _ => {
                return Err(Error::InvalidInput(
                    "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither".into(),
                ));
            }
        }
        Self::s3(&config)
    }

    /// Open S3-compatible storage from explicit settings.
    pub fn s3(config: &S3Config) -> Result<Self> {
        // The HTTP transport S3 needs is installed once per process.
        opendal::install_default();
        let mut builder = opendal::services::S3::default()
            .bucket(&config.bucket)
            .root(&format!("/{}", config.prefix.trim_matches('/')))
            .region(config.region.as_deref().unwrap_or("us-east-1"));
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint(endpoint);
        }
        if let Some(c) = &config.credentials {
            builder = builder
                .access_key_id(&c.access_key_id)
                .secret_access_key(&c.secret_access_key)
                .disable_config_load()
                .disable_ec2_metadata();
            if let Some(token) = &c.session_token {
                builder = builder.session_token(token);
            }
        }
        let location = format!(
            "s3://{}/{}{}",
            config.bucket,
            config.prefix.trim_matches('/'),
            config
                .endpoint
                .as_ref()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        );
        let op = Operator::new(builder)
            .map_err(|e| Error::StorageUnreachable {
                location: location.clone(),
                cause: e.to_string(),
            })?
            .layer(retry_layer());
        Ok(Storage {
            op,
            location,
            upload_concurrency: 8,
        })
    }

    /// Wrap an operator built elsewhere (tests add fault-injection layers).
    /// The caller chooses its layers; no retry layer is added here.
    pub fn from_operator(op: Operator, location: impl Into<String>) -> Self {
        Storage {
            op,
            location: location.into(),
            upload_concurrency: 4,
        }
    }

    /// Where the repository lives, for messages (never holds credentials).
    pub fn location(&self) -> &str {
        &self.location
    }

    fn map_err(&self, path: &str, e: opendal::Error) -> Error {
        match e.kind() {
            DalErrorKind::NotFound => Error::MissingObject {
                path: path.to_string(),
            },
            DalErrorKind::PermissionDenied | DalErrorKind::ConfigInvalid => {
                Error::StorageUnreachable {
                    location: self.location.clone(),
                    cause: e.to_string(),
                }
            }
            _ => Error::Storage {
                path: path.to_string(),
                cause: e.to_string(),
            },
        }
    }

    /// Read a whole object into one contiguous buffer.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>> {
        Ok(self.read_pieces(path).await?.to_vec())
    }

    /// Read a whole object as the pieces the backend returned (no copy into
    /// one buffer: large packs are processed piece by piece).
    pub async fn read_pieces(&self, path: &str) -> Result<opendal::Buffer> {
        self.op.read(path).await.map_err(|e| self.map_err(path, e))
    }

    /// Read `len` bytes at `offset` into one contiguous buffer.
    pub async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        Ok(self.read_range_pieces(path, offset, len).await?.to_vec())
    }

    /// Read `len` bytes at `offset` as the backend's pieces.
    pub async fn read_range_pieces(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<opendal::Buffer> {
        if len == 0 {
            return Ok(opendal::Buffer::new());
        }
        let buf = self
            .op
            .read_with(path)
            .range(offset..offset + len)
            .await
            .map_err(|e| self.map_err(path, e))?;
        if buf.len() as u64 != len {
            return Err(Error::damaged(
                path.to_string(),
                format!(
                    "short read: wanted {len} bytes at offset {offset}, got {}",
                    buf.len()
                ),
            ));
        }
        Ok(buf)
    }

    /// Write a whole object (atomically, see the module docs).
    pub async fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        self.op
            .write(path, data)
            .await
            .map_err(|e| self.map_err(path, e))?;
        Ok(())
    }

    /// Delete an object; deleting a missing object succeeds.
    pub async fn delete(&self, path: &str) -> Result<()> {
        match self.op.delete(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == DalErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.map_err(path, e)),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        self.op
            .exists(path)
            .await
            .map_err(|e| self.map_err(path, e))
    }

    /// List the objects of a kind. Names that are not ids (stray files) are
    /// skipped.
    pub async fn list(&self, kind: ObjectKind) -> Result<Vec<ListedObject>> {
        let entries = self
            .op
            .list_with(kind.dir())
            .recursive(kind == ObjectKind::Pack)
            .await
            .map_err(|e| self.map_err(kind.dir(), e))?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.metadata().is_dir() {
                continue;
            }
            let name = entry.name();
            if let Ok(id) = Id::from_hex(name) {
                let size = entry.metadata().content_length();
                out.push(ListedObject { id, size });
            }
        }
        Ok(out)
    }

    /// List leftover temporary files with their ages (local disk only).
    pub async fn list_temporary(&self) -> Result<Vec<(String, Option<jiff::Timestamp>)>> {
        let entries = match self.op.list(TMP_DIR).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == DalErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.map_err(TMP_DIR, e)),
        };
        Ok(entries
            .into_iter()
            .filter(|e| !e.metadata().is_dir())
            .map(|e| {
                let modified = e
                    .metadata()
                    .last_modified()
                    .and_then(|t| jiff::Timestamp::from_second(t.into_inner().as_second()).ok());
                (e.path().to_string(), modified)
            })
            .collect())
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths() {
        let id = Id::of_object(b"x");
        let hex = id.to_hex();
        assert_eq!(
            ObjectKind::Pack.path(&id),
            format!("data/{}/{hex}", &hex[..2])
        );
        assert_eq!(ObjectKind::Snapshot.path(&id), format!("snapshots/{hex}"));
    }

    #[test]
    fn bad_urls_are_explained() {
        let err = Storage::open("ftp://host/x", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported repository URL"), "{err}");
        let err = Storage::open("s3:///prefix", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no bucket"), "{err}");
        let err = Storage::open("", false).unwrap_err().to_string();
        assert!(err.contains("no repository given"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = Storage::open(missing.to_str().unwrap(), false).unwrap_err();
        assert!(matches!(err, Error::NotARepository { .. }));
        assert!(!missing.exists(), "opening must not create the directory");
    }
}
