//! A git worktree per session: parallel sessions in one repository each
//! work on a branch of their own, in a directory of their own
//! (`<workspace>/.worktrees/<session id>`, kept out of the main checkout's
//! status by `.git/info/exclude`), and are merged back or discarded.
//!
//! The session row names the worktree (path, branch, base commit) when the
//! session is made; the directory is made by the session's first run, in
//! that run's own task.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::git;

/// Where a workspace's session worktrees live, inside it.
const DIR: &str = ".worktrees";

/// The identity of the commits a merge makes, unless the repository names one.
const AUTHOR: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "claude-graphql"),
    ("GIT_AUTHOR_EMAIL", "claude-graphql@localhost"),
    ("GIT_COMMITTER_NAME", "claude-graphql"),
    ("GIT_COMMITTER_EMAIL", "claude-graphql@localhost"),
];

/// A session's worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    pub path: PathBuf,
    pub branch: String,
    /// The commit it starts from.
    pub base: String,
}

impl Worktree {
    /// The worktree a new session of `repo` gets, from `base_ref` (HEAD
    /// when None); an error names the input at fault (`worktree` or
    /// `baseRef`) and says why there can be none.
    pub async fn plan(repo: &Path, session: Uuid, base_ref: Option<&str>) -> Result<Worktree, (&'static str, String)> {
        let top = git::run(repo, &["rev-parse", "--show-toplevel"], &[]).await.filter(|o| o.ok);
        let not_repo = || ("worktree", "the workspace is not a git repository (or git is not installed)".to_owned());
        if Path::new(&top.ok_or_else(not_repo)?.text()) != repo {
            return Err(("worktree", "the workspace is inside a git repository, not at its top".into()));
        }
        let base_ref = base_ref.unwrap_or("HEAD");
        if base_ref.starts_with('-') || base_ref.contains("..") {
            return Err(("baseRef", format!("`{base_ref}` is not a ref")));
        }
        let spec = format!("{base_ref}^{{commit}}");
        let base = git::run(repo, &["rev-parse", "--verify", "--quiet", &spec], &[]).await.filter(|o| o.ok);
        let base = base.ok_or_else(|| ("baseRef", format!("`{base_ref}` names no commit here")))?.text();
        Ok(Worktree { path: repo.join(DIR).join(session.to_string()), branch: format!("claude/{session}"), base })
    }

    /// The repository the worktree belongs to.
    fn repo(&self) -> Option<&Path> {
        self.path.parent()?.parent()
    }

    /// Makes the worktree, unless it is there already.
    pub async fn ensure(&self) -> Result<(), String> {
        if self.path.is_dir() {
            return Ok(());
        }
        let repo = self.repo().ok_or("no repository")?;
        exclude(repo).await;
        let path = self.path.display().to_string();
        let made = git::run(repo, &["worktree", "add", "-q", "-b", &self.branch, &path, &self.base], &[]).await;
        check(made, "make the worktree")
    }

    /// Commits what the session left uncommitted in its worktree, merges
    /// its branch into what the repository's main checkout has checked
    /// out, and removes the worktree and the branch. On a conflict the
    /// merge is undone and the worktree stays.
    pub async fn merge(&self, message: &str) -> Result<(), String> {
        let repo = self.repo().ok_or("no repository")?;
        if self.path.is_dir() {
            check(git::run(&self.path, &["add", "-A"], &[]).await, "stage the worktree's changes")?;
            let staged = git::run(&self.path, &["diff", "--cached", "--quiet"], &[]).await;
            if staged.is_some_and(|o| !o.ok) {
                let committed = git::run(&self.path, &["commit", "-q", "-m", message], &author()).await;
                check(committed, "commit the worktree's changes")?;
            }
        }
        let merge_message = format!("Merge {}: {message}", self.branch);
        let merged =
            git::run(repo, &["merge", "--no-ff", "--no-edit", "-m", &merge_message, &self.branch], &author()).await;
        if !merged.as_ref().is_some_and(|o| o.ok) {
            let conflicted = git::run(repo, &["diff", "--name-only", "--diff-filter=U"], &[]).await;
            let files = conflicted.map(|o| o.text().lines().collect::<Vec<_>>().join(", ")).unwrap_or_default();
            let _ = git::run(repo, &["merge", "--abort"], &[]).await;
            let why = merged.map(|o| o.stderr).unwrap_or_default();
            return Err(if files.is_empty() {
                format!("the merge did not go through: {why}")
            } else {
                format!("merging conflicts in {files}; the merge was undone")
            });
        }
        // Merged: what is left is tidying up, which must not undo that.
        if let Err(why) = self.remove(false).await {
            tracing::warn!(path = %self.path.display(), %why, "merged, but could not remove the worktree");
        }
        Ok(())
    }

    /// Removes the worktree and its branch (merged or not, with `force`).
    pub async fn remove(&self, force: bool) -> Result<(), String> {
        let repo = self.repo().ok_or("no repository")?;
        if self.path.is_dir() {
            let path = self.path.display().to_string();
            check(git::run(repo, &["worktree", "remove", "--force", &path], &[]).await, "remove the worktree")?;
        }
        let delete = if force { "-D" } else { "-d" };
        let exists = git::run(repo, &["rev-parse", "--verify", "--quiet", &self.branch], &[]).await;
        if exists.is_some_and(|o| o.ok) {
            check(git::run(repo, &["branch", delete, &self.branch], &[]).await, "delete the branch")?;
        }
        Ok(())
    }
}

fn author() -> Vec<(&'static str, &'static std::ffi::OsStr)> {
    AUTHOR.iter().map(|(k, v)| (*k, std::ffi::OsStr::new(*v))).collect()
}

fn check(output: Option<git::Output>, what: &str) -> Result<(), String> {
    match output {
        Some(o) if o.ok => Ok(()),
        Some(o) => Err(format!("could not {what}: {}", o.stderr)),
        None => Err(format!("could not {what}: git did not run")),
    }
}

/// Keeps the worktrees out of the main checkout's `git status`.
async fn exclude(repo: &Path) {
    let Some(path) = git::run(repo, &["rev-parse", "--git-path", "info/exclude"], &[]).await else { return };
    let path = repo.join(path.text());
    let line = format!("/{DIR}/");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if !current.lines().any(|l| l.trim() == line) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(
            &path,
            format!("{current}{}{line}\n", if current.ends_with('\n') || current.is_empty() { "" } else { "\n" }),
        );
    }
}
