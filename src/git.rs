//! Running git on a workspace, from the server.
//!
//! A workspace's own git config can name programs for git to run (hooks,
//! fsmonitor, filters), and Claude may have written it: git runs confined
//! like `claude` itself (its own cgroup, killed when done, the server's
//! secrets out of its environment), with hooks and fsmonitor switched off,
//! without the user's or the system's config, and with a time limit.

use std::{ffi::OsStr, os::fd::AsRawFd, path::Path, process::Stdio, time::Duration};

use crate::claude::sandbox;

/// One git command, at most.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What a git command said.
pub struct Output {
    pub ok: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// Its stdout as text, without the final newline.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim_end_matches('\n').to_owned()
    }
}

/// Runs `git args` in `dir` with `env` added; None when git could not run
/// (it is not installed, the directory is gone, it timed out).
pub async fn run(dir: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Option<Output> {
    let dir_fd = sandbox::open_dir_nofollow(dir).ok()?;
    let mut cmd = sandbox::child_command("git");
    cmd.args(["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.quotePath=false"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let cgroup = sandbox::RunCgroup::create(&format!("git-{}", uuid::Uuid::new_v4()));
    sandbox::confine_child(&mut cmd, dir_fd.as_raw_fd(), cgroup.as_ref().map(sandbox::RunCgroup::procs_fd));
    let output = match cmd.spawn() {
        Ok(child) => tokio::time::timeout(TIMEOUT, child.wait_with_output()).await.ok().and_then(Result::ok),
        Err(_) => None,
    };
    if let Some(cgroup) = cgroup {
        cgroup.kill_and_remove().await;
    }
    let output = output?;
    Some(Output {
        ok: output.status.success(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}
