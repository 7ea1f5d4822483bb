//! Workspace paths: which directories a user may register, and whether a
//! registered one is still the directory it was.
//!
//! With workspace roots configured, every refusal of a path reads the same,
//! whatever the reason (missing, a file, outside the root): the answer
//! must teach nothing about the file system outside the user's root.

use std::path::{Component, Path, PathBuf};

use crate::error::{AppError, AppResult};

/// Where users may register workspaces.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceRoots(Vec<PathBuf>);

impl WorkspaceRoots {
    /// `roots` as configured; `{sub}` in one stands for the user.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self(roots)
    }

    /// The canonical form of a requested workspace path, if `owner` may
    /// register it.
    pub fn resolve_new(&self, raw: &str, owner: &str) -> AppResult<String> {
        if raw.trim().is_empty() {
            return Err(AppError::bad_input("path", "`path` must not be empty"));
        }
        let path = Path::new(raw);
        if !path.is_absolute() {
            return Err(AppError::bad_input("path", "`path` must be absolute"));
        }
        if self.0.is_empty() {
            // No boundary to protect: say exactly what is wrong.
            let canonical =
                path.canonicalize().map_err(|_| AppError::bad_input("path", format!("`{raw}` does not exist")))?;
            if !canonical.is_dir() {
                return Err(AppError::bad_input("path", format!("`{raw}` is not a directory")));
            }
            return utf8(canonical);
        }
        let refused = || AppError::bad_input("path", OUTSIDE);
        let roots = self.user_roots(owner);
        // The root first, by name alone: nothing outside it is touched.
        if !roots.iter().any(|root| lexically_normal(path).starts_with(root)) {
            return Err(refused());
        }
        // Then for real: a link inside the root may lead out of it. What
        // lies beyond a link gets the one answer, whatever it is.
        let canonical = match path.canonicalize() {
            Ok(canonical) => canonical,
            Err(_) if !crosses_link(path) => {
                return Err(AppError::bad_input("path", format!("`{raw}` does not exist")));
            }
            Err(_) => return Err(refused()),
        };
        if !self.contains(&roots, &canonical) {
            return Err(refused());
        }
        if !canonical.is_dir() {
            return Err(AppError::bad_input("path", format!("`{raw}` is not a directory")));
        }
        utf8(canonical)
    }

    /// Whether a registered workspace path still names the directory that
    /// was registered: canonical (no link anywhere in it, nothing moved),
    /// a directory, and under one of `owner`'s roots.
    pub fn check_registered(&self, stored: &str, owner: &str) -> AppResult<()> {
        let changed = || {
            AppError::Forbidden(
                "the workspace directory is not the one that was registered any more (it was moved, removed \
                 or replaced by a link); register it again"
                    .into(),
            )
        };
        let path = Path::new(stored);
        let canonical = path.canonicalize().map_err(|_| changed())?;
        if canonical != path || !canonical.is_dir() {
            return Err(changed());
        }
        if !self.0.is_empty() && !self.contains(&self.user_roots(owner), &canonical) {
            return Err(changed());
        }
        Ok(())
    }

    fn user_roots(&self, owner: &str) -> Vec<PathBuf> {
        self.0.iter().filter_map(|root| user_root(root, owner)).collect()
    }

    fn contains(&self, roots: &[PathBuf], canonical: &Path) -> bool {
        roots.iter().filter_map(|root| root.canonicalize().ok()).any(|root| canonical.starts_with(root))
    }
}

/// Why a path is refused when it is (or leads) outside the user's roots.
const OUTSIDE: &str = "`path` is not an existing directory under an allowed workspace root";

/// Whether any existing component of `path` is a symbolic link (or cannot
/// be looked at).
fn crosses_link(path: &Path) -> bool {
    let mut prefix = PathBuf::new();
    for component in lexically_normal(path).components() {
        prefix.push(component);
        match std::fs::symlink_metadata(&prefix) {
            Ok(meta) if meta.file_type().is_symlink() => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Err(_) => return true,
        }
    }
    false
}

fn utf8(path: PathBuf) -> AppResult<String> {
    path.into_os_string().into_string().map_err(|_| AppError::bad_input("path", "`path` must be valid UTF-8"))
}

/// `path` with `.` and `..` resolved by name alone (no symlinks followed).
fn lexically_normal(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// A root with `{sub}` replaced by the user; None when the user's name
/// cannot be a single path component.
fn user_root(root: &Path, owner: &str) -> Option<PathBuf> {
    let text = root.to_str()?;
    if !text.contains("{sub}") {
        return Some(root.to_owned());
    }
    let safe = !owner.is_empty() && owner != "." && owner != ".." && !owner.contains(['/', '\\', '\0']);
    safe.then(|| PathBuf::from(text.replace("{sub}", owner)))
}
