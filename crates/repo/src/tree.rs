//! Trees: the directory listings of a snapshot, one tree blob per directory.
//!
//! A tree is JSON `{"nodes": [...]}` with nodes sorted by name bytes and no
//! two nodes of the same name. Names and link targets are byte strings on
//! Unix; they are stored as JSON strings when they are UTF-8 and as
//! `{"hex": "..."}` otherwise.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::id::Id;

/// A file name or link target as raw bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileName(pub Vec<u8>);

impl FileName {
    /// From an OS string.
    pub fn from_os(name: &OsStr) -> Self {
        FileName(name.as_bytes().to_vec())
    }

    /// As an OS string.
    pub fn as_os(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }

    /// Lossy text, for people.
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// Check that the name is a single safe path component: not empty, not
    /// `.` or `..`, and without `/` or NUL. Restore and export refuse
    /// anything else, whatever a (possibly crafted) snapshot says.
    pub fn validate_component(&self) -> Result<()> {
        let reason = if self.0.is_empty() {
            Some("empty name")
        } else if self.0 == b"." || self.0 == b".." {
            Some("the name is . or .., which would leave its directory")
        } else if self.0.contains(&b'/') {
            Some(if self.0.first() == Some(&b'/') {
                "the name is an absolute path"
            } else {
                "the name contains /, which would reach into another directory"
            })
        } else if self.0.contains(&0) {
            Some("the name contains a NUL byte")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::UnsafeEntry {
                name: self.lossy(),
                reason,
            }),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.lossy())
    }
}

impl From<&str> for FileName {
    fn from(s: &str) -> Self {
        FileName(s.as_bytes().to_vec())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NameRepr {
    Text(String),
    Raw { hex: String },
}

impl Serialize for FileName {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => NameRepr::Text(text.to_string()).serialize(s),
            Err(_) => NameRepr::Raw {
                hex: hex::encode(&self.0),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match NameRepr::deserialize(d)? {
            NameRepr::Text(t) => Ok(FileName(t.into_bytes())),
            NameRepr::Raw { hex } => hex::decode(hex)
                .map(FileName)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A regular file (content in `content`).
    File,
    /// A directory (listing in `subtree`).
    Dir,
    /// A symbolic link (target in `target`).
    Symlink,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Name within its directory.
    pub name: FileName,
    /// File, directory or symlink.
    pub kind: NodeKind,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch (change detection).
    #[serde(default)]
    pub ctime_ns: i64,
    /// Inode number (change detection).
    #[serde(default)]
    pub inode: u64,
    /// Size in bytes (files).
    #[serde(default)]
    pub size: u64,
    /// Link target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<FileName>,
    /// Content chunk ids in order (files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// Tree id of the listing (directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
}

impl Node {
    /// A node not backed by a file on disk (the directories and files of
    /// named streams), owned by the current user.
    pub fn synthetic(name: FileName, kind: NodeKind, mode: u32, mtime_ns: i64) -> Self {
        Node {
            name,
            kind,
            mode,
            uid: current_uid(),
            gid: current_gid(),
            mtime_ns,
            ctime_ns: 0,
            inode: 0,
            size: 0,
            target: None,
            content: Vec::new(),
            subtree: None,
        }
    }
}

pub(crate) fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

pub(crate) fn current_gid() -> u32 {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

/// A directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries sorted by name.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sort nodes by name (writers call this before serializing).
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Serialize for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("trees serialize")
    }

    /// Parse a stored tree without judging its names (listing, diff).
    pub fn from_bytes(bytes: &[u8], id: &Id) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::damaged(
                format!("tree {}", id.short()),
                format!("not a valid tree: {e}"),
            )
        })
    }

    /// Check every name is a safe component and no name repeats: what
    /// restore and export require before they write anything.
    pub fn validate(&self) -> Result<()> {
        for node in &self.nodes {
            node.name.validate_component()?;
            match node.kind {
                NodeKind::Dir if node.subtree.is_none() => {
                    return Err(Error::UnsafeEntry {
                        name: node.name.lossy(),
                        reason: "a directory without a listing",
                    });
                }
                NodeKind::Symlink if node.target.is_none() => {
                    return Err(Error::UnsafeEntry {
                        name: node.name.lossy(),
                        reason: "a symlink without a target",
                    });
                }
                _ => {}
            }
        }
        let mut names: Vec<&FileName> = self.nodes.iter().map(|n| &n.name).collect();
        names.sort();
        if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::UnsafeEntry {
                name: pair[0].lossy(),
                reason: "the name appears twice in one directory (e.g. a symlink and a directory)",
            });
        }
        Ok(())
    }

    /// Find a node by name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.0.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
            .or_else(|| self.nodes.iter().find(|n| n.name.0 == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_serialize_as_text_or_hex() {
        let text = FileName::from("héllo wörld");
        assert_eq!(serde_json::to_string(&text).unwrap(), "\"héllo wörld\"");
        let raw = FileName(vec![0x66, 0xff, 0x6f]);
        let json = serde_json::to_string(&raw).unwrap();
        assert_eq!(json, r#"{"hex":"66ff6f"}"#);
        assert_eq!(serde_json::from_str::<FileName>(&json).unwrap(), raw);
    }

    #[test]
    fn unsafe_names_are_refused() {
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a/b", "a\0b"] {
            assert!(
                FileName::from(bad).validate_component().is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(FileName::from("..x").validate_component().is_ok());
        let node = |name: &str, kind| Node {
            name: name.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size: 0,
            target: (kind == NodeKind::Symlink).then(|| FileName::from("/")),
            content: vec![],
            subtree: (kind == NodeKind::Dir).then(Id::random),
        };
        let tree = Tree {
            nodes: vec![node("a", NodeKind::Symlink), node("a", NodeKind::Dir)],
        };
        let err = tree.validate().unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
    }
}
