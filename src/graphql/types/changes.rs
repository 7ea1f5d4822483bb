//! `Changes`: what a run (or a session) changed in its workspace.

use async_graphql::{Enum, SimpleObject};

use crate::changes;

/// Where the changes were read from.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChangeSource {
    /// Snapshots of the repository's working tree, before and after: every
    /// change, whatever made it.
    Git,
    /// The run's Write and Edit results (the workspace is not a git
    /// repository): changes made otherwise, by a Bash command for one, are
    /// not seen.
    Tools,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum FileChangeStatus {
    Added,
    Modified,
    Deleted,
}

/// One changed file.
#[derive(SimpleObject)]
pub struct FileChange {
    /// Relative to the workspace (to the repository's top, in a repository).
    pub path: String,
    pub status: FileChangeStatus,
    /// Lines added and deleted; null for a binary file.
    pub additions: Option<i64>,
    pub deletions: Option<i64>,
}

/// What was changed: the files, and a unified diff.
#[derive(SimpleObject)]
pub struct Changes {
    pub source: ChangeSource,
    pub files: Vec<FileChange>,
    /// A unified diff of all of it (at most 256 KiB; see `diffTruncated`).
    pub diff: String,
    pub diff_truncated: bool,
}

impl From<changes::Changes> for Changes {
    fn from(c: changes::Changes) -> Changes {
        let files = c.files.into_iter().map(|f| FileChange {
            status: match f.status.as_str() {
                "added" => FileChangeStatus::Added,
                "deleted" => FileChangeStatus::Deleted,
                _ => FileChangeStatus::Modified,
            },
            path: f.path,
            additions: f.additions,
            deletions: f.deletions,
        });
        Changes {
            source: if c.source == "git" { ChangeSource::Git } else { ChangeSource::Tools },
            files: files.collect(),
            diff: c.diff,
            diff_truncated: c.truncated,
        }
    }
}

/// Stored changes, read back.
pub fn stored(json: Option<&serde_json::Value>) -> Option<changes::Changes> {
    serde_json::from_value(json?.clone()).ok()
}
