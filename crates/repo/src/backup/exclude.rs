//! Exclude patterns of a backup.
//!
//! A pattern without `/` matches a name anywhere (`*.log`, `node_modules`);
//! a pattern with `/` matches a path relative to the source root
//! (`wp-content/cache`, `/tmp/*`; a leading `/` is optional). `*` never
//! crosses `/`; `**` does. An excluded directory is skipped whole.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// Compiled exclude patterns.
#[derive(Debug, Clone)]
pub struct Excludes {
    by_name: GlobSet,
    by_path: GlobSet,
    empty: bool,
}

impl Excludes {
    /// Compile patterns; a malformed pattern is an error naming it.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self> {
        let mut by_name = GlobSetBuilder::new();
        let mut by_path = GlobSetBuilder::new();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            let trimmed = pattern.trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "exclude pattern {pattern:?} is empty"
                )));
            }
            let anchored = trimmed.contains('/');
            let text = trimmed.trim_start_matches('/');
            let glob = GlobBuilder::new(text)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| {
                    Error::InvalidInput(format!("exclude pattern {pattern:?} is invalid: {e}"))
                })?;
            if anchored {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::InvalidInput(format!("exclude patterns: {e}")))
        };
        Ok(Excludes {
            by_name: build(by_name)?,
            by_path: build(by_path)?,
            empty: patterns.is_empty(),
        })
    }

    /// Whether the entry at `relative` (from the source root) is excluded.
    pub fn is_excluded(&self, relative: &Path) -> bool {
        if self.empty {
            return false;
        }
        let name_hit = relative
            .file_name()
            .is_some_and(|n| self.by_name.is_match(Path::new(n)));
        name_hit || self.by_path.is_match(relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_path_patterns() {
        let ex = Excludes::new(&["*.log", "wp-content/cache", "/tmp/*", "node_modules/"]).unwrap();
        assert!(ex.is_excluded(Path::new("a/b/error.log")));
        assert!(ex.is_excluded(Path::new("wp-content/cache")));
        assert!(
            !ex.is_excluded(Path::new("x/wp-content/cache")),
            "anchored at the source root"
        );
        assert!(ex.is_excluded(Path::new("tmp/sess1")));
        assert!(!ex.is_excluded(Path::new("tmp/a/b")), "* does not cross /");
        assert!(ex.is_excluded(Path::new("lib/node_modules")));
        assert!(!ex.is_excluded(Path::new("index.php")));
        assert!(
            Excludes::new(&["a[b"])
                .unwrap_err()
                .to_string()
                .contains("a[b")
        );
    }
}
