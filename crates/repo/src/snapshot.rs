//! Snapshots: the root of one backup, with where, when and what it saved.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::id::Id;

const AAD: &[u8] = b"chom-repo snapshot";

/// What a backup did, recorded in its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Files in the snapshot.
    pub files: u64,
    /// Directories in the snapshot.
    pub dirs: u64,
    /// Files read because they were new.
    pub files_new: u64,
    /// Files read because they changed.
    pub files_changed: u64,
    /// Files taken from the parent snapshot without reading.
    pub files_unchanged: u64,
    /// Logical size of all files in the snapshot.
    pub total_bytes: u64,
    /// Bytes read from files and streams.
    pub bytes_read: u64,
    /// Plaintext bytes of blobs new to the repository.
    pub bytes_added: u64,
    /// Bytes written to storage (packs and index) for those blobs.
    pub bytes_stored: u64,
    /// Wall time of the backup in milliseconds.
    pub duration_ms: u64,
    /// Files that could not be read and were left out, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// A snapshot object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup started.
    pub time: Timestamp,
    /// Host that made it.
    pub host: String,
    /// User that made it.
    pub username: String,
    /// Absolute source paths (and `stdin:NAME` for streams).
    pub paths: Vec<String>,
    /// `key=value` labels.
    pub tags: BTreeMap<String, String>,
    /// Root tree.
    pub tree: Id,
    /// The snapshot this one was compared against.
    pub parent: Option<Id>,
    /// Statistics.
    pub summary: Summary,
    /// Program that wrote it.
    pub program: String,
}

impl Snapshot {
    /// Serialize and seal.
    pub fn encode(&self, crypto: &Crypto) -> Vec<u8> {
        crypto.seal(AAD, &serde_json::to_vec(self).expect("snapshots serialize"))
    }

    /// Open and parse.
    pub fn decode(crypto: &Crypto, name: &Id, sealed: Vec<u8>) -> Result<Self> {
        let damaged = |reason: String| Error::damaged(format!("snapshot {}", name.short()), reason);
        let plain = crypto
            .open(AAD, sealed)
            .map_err(|e| damaged(e.to_string()))?;
        serde_json::from_slice(&plain).map_err(|e| damaged(format!("not a valid snapshot: {e}")))
    }

    /// Whether every tag of `filter` is on this snapshot.
    pub fn has_tags(&self, filter: &BTreeMap<String, String>) -> bool {
        filter.iter().all(|(k, v)| self.tags.get(k) == Some(v))
    }
}

/// Parse `key=value` tags, rejecting malformed ones with a clear message.
pub fn parse_tags<S: AsRef<str>>(tags: &[S]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for tag in tags {
        let tag = tag.as_ref();
        let Some((key, value)) = tag.split_once('=') else {
            return Err(Error::InvalidInput(format!(
                "tag {tag:?} is not of the form key=value"
            )));
        };
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !key_ok {
            return Err(Error::InvalidInput(format!(
                "tag key {key:?} must be non-empty and use only letters, digits, '.', '_' and '-'"
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(Error::InvalidInput(format!(
                "tag value of {key:?} contains control characters"
            )));
        }
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// Pick a snapshot by full id, unique id prefix, or `latest` (newest among
/// those carrying `tags`).
pub fn resolve<'a>(
    spec: &str,
    snapshots: &'a [(Id, Snapshot)],
    tags: &BTreeMap<String, String>,
) -> Result<&'a (Id, Snapshot)> {
    let candidates = snapshots.iter().filter(|(_, s)| s.has_tags(tags));
    if spec == "latest" {
        return candidates
            .max_by_key(|(id, s)| (s.time, *id))
            .ok_or_else(|| Error::SnapshotNotFound(describe_latest(tags)));
    }
    let lower = spec.to_ascii_lowercase();
    if lower.is_empty() || !lower.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::InvalidInput(format!(
            "{spec:?} is not a snapshot id: give a hex id, a unique prefix of one, or `latest`"
        )));
    }
    let matches: Vec<&(Id, Snapshot)> = candidates
        .filter(|(id, _)| id.to_hex().starts_with(&lower))
        .collect();
    match matches.len() {
        0 => Err(Error::SnapshotNotFound(spec.to_string())),
        1 => Ok(matches[0]),
        count => Err(Error::AmbiguousSnapshot {
            prefix: spec.to_string(),
            count,
        }),
    }
}

fn describe_latest(tags: &BTreeMap<String, String>) -> String {
    if tags.is_empty() {
        "latest".into()
    } else {
        let t: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("latest with tags {}", t.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(secs: i64, tags: &[&str]) -> Snapshot {
        Snapshot {
            time: Timestamp::from_second(secs).unwrap(),
            host: "h".into(),
            username: "u".into(),
            paths: vec![],
            tags: parse_tags(tags).unwrap(),
            tree: Id::random(),
            parent: None,
            summary: Summary::default(),
            program: "test".into(),
        }
    }

    #[test]
    fn resolve_latest_prefix_and_errors() {
        let list = vec![
            (
                Id::from_hex(&"ab".repeat(32)).unwrap(),
                snap(10, &["site=a"]),
            ),
            (
                Id::from_hex(&format!("ac{}", "00".repeat(31))).unwrap(),
                snap(20, &["site=b"]),
            ),
            (
                Id::from_hex(&"cd".repeat(32)).unwrap(),
                snap(15, &["site=a"]),
            ),
        ];
        let none = BTreeMap::new();
        assert_eq!(
            resolve("latest", &list, &none).unwrap().1.time.as_second(),
            20
        );
        let site_a = parse_tags(&["site=a"]).unwrap();
        assert_eq!(
            resolve("latest", &list, &site_a)
                .unwrap()
                .1
                .time
                .as_second(),
            15
        );
        assert_eq!(resolve("cd", &list, &none).unwrap().0, list[2].0);
        assert!(matches!(
            resolve("a", &list, &none),
            Err(Error::AmbiguousSnapshot { count: 2, .. })
        ));
        assert!(matches!(
            resolve("ef", &list, &none),
            Err(Error::SnapshotNotFound(_))
        ));
        assert!(matches!(
            resolve("xyz", &list, &none),
            Err(Error::InvalidInput(_))
        ));
        let missing = parse_tags(&["site=zzz"]).unwrap();
        let err = resolve("latest", &list, &missing).unwrap_err().to_string();
        assert!(err.contains("site=zzz"), "{err}");
    }

    #[test]
    fn tags_are_validated() {
        assert!(parse_tags(&["novalue"]).is_err());
        assert!(parse_tags(&["=v"]).is_err());
        assert!(parse_tags(&["bad key=v"]).is_err());
        assert_eq!(parse_tags(&["type=full", "site=01H"]).unwrap().len(), 2);
    }
}
