//! What a run changed in its workspace: files added, modified and deleted,
//! with line counts and a unified diff.
//!
//! In a git repository the working tree is snapshotted (as a tree object,
//! through a private copy of the index, so the user's index and branches
//! are never touched) when the run starts and when it ends, and the two
//! are compared: whatever changed the files (an edit, a Bash command) is
//! seen. Elsewhere the run's Write and Edit tool results are what it
//! changed, as the CLI reported them.
//!
//! git runs as `crate::git` runs it: confined, without hooks.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest diff kept.
pub const MAX_DIFF: usize = 256 * 1024;

/// What was changed, as stored with an execution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    /// `git` or `tools`.
    pub source: String,
    pub files: Vec<FileChange>,
    pub diff: String,
    /// The diff was cut at [`MAX_DIFF`].
    pub truncated: bool,
    /// The snapshots compared (git only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    /// Relative to the workspace.
    pub path: String,
    /// `added`, `modified` or `deleted`.
    pub status: String,
    /// None for a binary file.
    pub additions: Option<i64>,
    pub deletions: Option<i64>,
}

/// Runs git in `dir`; its stdout when it succeeds.
async fn git(dir: &Path, args: &[&str], index: Option<&Path>) -> Option<Vec<u8>> {
    let env: Vec<(&str, &std::ffi::OsStr)> = index.map(|i| ("GIT_INDEX_FILE", i.as_os_str())).into_iter().collect();
    crate::git::run(dir, args, &env).await.filter(|o| o.ok).map(|o| o.stdout)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim_end_matches('\n').to_owned()
}

/// The working tree of the repository at `dir`, as a git tree id (its
/// files written to the object store); None when `dir` is not the top of
/// a repository, or git is not there.
pub async fn snapshot(dir: &Path) -> Option<String> {
    // The top of a repository (or of a worktree) holds `.git`: a stat
    // spares starting git for every run in a directory that is none.
    if std::fs::symlink_metadata(dir.join(".git")).is_err() {
        return None;
    }
    let found = text(git(dir, &["rev-parse", "--show-toplevel", "--git-path", "index"], None).await?);
    let (top, index) = found.split_once('\n')?;
    // Only a workspace that is its repository: one inside a larger
    // repository would see its neighbours' changes (another user's, even).
    if Path::new(top) != dir {
        return None;
    }
    let index = index.to_owned();
    let index = if Path::new(&index).is_absolute() { PathBuf::from(index) } else { dir.join(index) };
    // A copy of the index: its file stats spare hashing unchanged files,
    // and the user's index is left as it is.
    let copy = tempfile::Builder::new().prefix("claude-index-").tempfile().ok()?;
    if index.is_file() {
        std::fs::copy(&index, copy.path()).ok()?;
    }
    git(dir, &["add", "-A"], Some(copy.path())).await?;
    Some(text(git(dir, &["write-tree"], Some(copy.path())).await?)).filter(|t| !t.is_empty())
}

/// What changed between two snapshots of the repository `dir` is in.
pub async fn between(dir: &Path, base: &str, head: &str) -> Option<Changes> {
    let plain = ["diff", "--no-ext-diff", "--no-textconv", "--no-renames"];
    let numstat = text(git(dir, &[&plain[..], &["--numstat", base, head]].concat(), None).await?);
    let statuses = text(git(dir, &[&plain[..], &["--name-status", base, head]].concat(), None).await?);
    let patch = git(dir, &[&plain[..], &[base, head]].concat(), None).await?;
    let mut files: BTreeMap<String, FileChange> = BTreeMap::new();
    for line in statuses.lines() {
        let Some((status, path)) = line.split_once('\t') else { continue };
        let status = match status {
            "A" => "added",
            "D" => "deleted",
            _ => "modified",
        };
        files.insert(
            path.to_owned(),
            FileChange { path: path.to_owned(), status: status.into(), additions: None, deletions: None },
        );
    }
    for line in numstat.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(adds), Some(dels), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if let Some(file) = files.get_mut(path) {
            file.additions = adds.parse().ok();
            file.deletions = dels.parse().ok();
        }
    }
    let (diff, truncated) = cut(String::from_utf8_lossy(&patch).into_owned());
    Some(Changes {
        source: "git".into(),
        files: files.into_values().collect(),
        diff,
        truncated,
        base: Some(base.to_owned()),
        head: Some(head.to_owned()),
    })
}

fn cut(mut diff: String) -> (String, bool) {
    if diff.len() <= MAX_DIFF {
        return (diff, false);
    }
    let mut end = MAX_DIFF;
    while !diff.is_char_boundary(end) {
        end -= 1;
    }
    diff.truncate(end);
    (diff, true)
}

/// Several runs' changes one after another (their files' line counts
/// added up); None for none.
pub fn concatenated(runs: Vec<Changes>) -> Option<Changes> {
    let mut runs = runs.into_iter();
    let mut all = runs.next()?;
    for run in runs {
        for file in run.files {
            match all.files.iter_mut().find(|f| f.path == file.path) {
                Some(known) => {
                    known.additions = known.additions.zip(file.additions).map(|(a, b)| a + b);
                    known.deletions = known.deletions.zip(file.deletions).map(|(a, b)| a + b);
                    if file.status == "deleted" || known.status == "deleted" {
                        known.status = file.status;
                    }
                }
                None => all.files.push(file),
            }
        }
        all.source = if all.source == run.source { all.source } else { "tools".into() };
        let (diff, truncated) = cut(all.diff + &run.diff);
        all.diff = diff;
        all.truncated |= truncated || run.truncated;
        all.head = run.head;
    }
    all.files.sort_by(|a, b| a.path.cmp(&b.path));
    Some(all)
}

/// Whether a stream line may carry a file tool's result (checked before
/// the line is parsed).
pub fn may_be_file_edit(payload: &str) -> bool {
    payload.contains("\"tool_use_result\":{") && payload.contains("\"filePath\"")
}

/// The `tool_use_result` of a Write or Edit result line, if it is one.
pub fn file_edit(payload: &str) -> Option<Value> {
    let mut line: Value = serde_json::from_str(payload).ok()?;
    let result = line.get_mut("tool_use_result")?.take();
    (result["filePath"].is_string() && (result["type"] == "create" || result["structuredPatch"].is_array()))
        .then_some(result)
}

/// What the Write and Edit results of a run say it changed in `cwd`.
pub fn from_tool_results(cwd: &Path, edits: &[Value]) -> Option<Changes> {
    if edits.is_empty() {
        return None;
    }
    let mut files: BTreeMap<String, FileChange> = BTreeMap::new();
    let mut diff = String::new();
    for edit in edits {
        let path = edit["filePath"].as_str().unwrap_or_default();
        let path = Path::new(path).strip_prefix(cwd).map_or(path.to_owned(), |p| p.display().to_string());
        let created = edit["type"] == "create" && edit["originalFile"].is_null();
        let (mut adds, mut dels) = (0, 0);
        if created {
            let content = edit["content"].as_str().unwrap_or_default();
            adds = content.lines().count() as i64;
            diff.push_str(&format!("--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{adds} @@\n"));
            content.lines().for_each(|l| diff.push_str(&format!("+{l}\n")));
        } else {
            diff.push_str(&format!("--- a/{path}\n+++ b/{path}\n"));
            for hunk in edit["structuredPatch"].as_array().into_iter().flatten() {
                let n = |k: &str| hunk[k].as_i64().unwrap_or(0);
                diff.push_str(&format!(
                    "@@ -{},{} +{},{} @@\n",
                    n("oldStart"),
                    n("oldLines"),
                    n("newStart"),
                    n("newLines")
                ));
                for line in hunk["lines"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                    adds += i64::from(line.starts_with('+'));
                    dels += i64::from(line.starts_with('-'));
                    diff.push_str(line);
                    diff.push('\n');
                }
            }
        }
        let file = files.entry(path.clone()).or_insert_with(|| FileChange {
            path,
            status: if created { "added" } else { "modified" }.into(),
            additions: Some(0),
            deletions: Some(0),
        });
        file.additions = file.additions.map(|a| a + adds);
        file.deletions = file.deletions.map(|d| d + dels);
    }
    let (diff, truncated) = cut(diff);
    Some(Changes {
        source: "tools".into(),
        files: files.into_values().collect(),
        diff,
        truncated,
        base: None,
        head: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_results_make_a_diff() {
        let cwd = Path::new("/work/ws");
        let edits = [
            json!({"type": "create", "filePath": "/work/ws/notes.txt", "content": "one\ntwo\n", "structuredPatch": [], "originalFile": null}),
            json!({"filePath": "/work/ws/src/a.rs", "oldString": "x", "newString": "y", "structuredPatch": [
                {"oldStart": 3, "oldLines": 2, "newStart": 3, "newLines": 2, "lines": [" keep", "-x", "+y"]}]}),
        ];
        let changes = from_tool_results(cwd, &edits).unwrap();
        assert_eq!(changes.source, "tools");
        assert_eq!(
            changes.files,
            [
                FileChange { path: "notes.txt".into(), status: "added".into(), additions: Some(2), deletions: Some(0) },
                FileChange {
                    path: "src/a.rs".into(),
                    status: "modified".into(),
                    additions: Some(1),
                    deletions: Some(1)
                },
            ]
        );
        assert!(changes.diff.contains("+++ b/notes.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n"), "{}", changes.diff);
        assert!(changes.diff.contains("@@ -3,2 +3,2 @@\n keep\n-x\n+y\n"), "{}", changes.diff);
        let line = json!({"type": "user", "tool_use_result": edits[0]}).to_string();
        assert!(may_be_file_edit(&line));
        assert_eq!(file_edit(&line), Some(edits[0].clone()));
    }

    #[test]
    fn a_long_diff_is_cut_on_a_character() {
        let (diff, truncated) = cut("é".repeat(MAX_DIFF));
        assert!(truncated && diff.len() <= MAX_DIFF && diff.chars().all(|c| c == 'é'));
    }
}
