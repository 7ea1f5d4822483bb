//! What keeps a `claude` process (and every tool it runs) away from the
//! server that started it.
//!
//! - The server makes itself non-dumpable ([`harden_server`]): another
//!   process of the same user can then no longer read its memory or
//!   `/proc/<pid>/environ` (where `JWT_SECRET` and `DATABASE_URL` may be).
//! - The child loses `CAP_SYS_PTRACE` from its bounding set, so that even a
//!   `claude` running as root cannot regain access that way.
//! - The child gets SIGKILL when the server dies, so that no run outlives a
//!   crashed or killed server.
//! - The child's working directory is a directory opened without following
//!   symbolic links, not a path looked up again at exec time.
//!
//! Separating users by operating-system account (running `claude` as
//! another uid) remains the operator's choice; see the README's Security
//! section.

use std::{
    io,
    os::fd::{AsFd, OwnedFd, RawFd},
    path::{Component, Path},
};

use nix::{fcntl::OFlag, sys::stat::Mode};

/// `CAP_SYS_PTRACE` (linux/capability.h): what would let a root child read
/// a non-dumpable server anyway.
const CAP_SYS_PTRACE: libc::c_ulong = 19;
use tokio::process::Command;

/// Environment variables of the server that no child ever sees, and that
/// are wiped from the server's own environment once read.
pub const SECRET_ENV: &[&str] = &["JWT_SECRET", "DATABASE_URL", "JWT_SECRET_FILE", "DATABASE_URL_FILE"];

/// A command for a child of the server (`claude`, git): in a process group
/// of its own, so that a stop signal reaches whatever it starts too;
/// killed if the server lets go of it; without the server's secrets.
pub fn child_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.process_group(0).kill_on_drop(true);
    for key in SECRET_ENV {
        cmd.env_remove(key);
    }
    cmd
}

/// Wipes the secrets from this process's environment, once the
/// configuration has been read: `remove_var` alone is not enough, since
/// `/proc/<pid>/environ` shows the environment block the process started
/// with, and a child running as root (or with CAP_SYS_PTRACE) may read that
/// even of a non-dumpable process. So their values are overwritten in
/// place first.
///
/// Call it from `main` before any other thread exists.
pub fn scrub_environment() {
    // SAFETY: single-threaded at this point (see above), so nothing reads
    // the environment concurrently. `environ` is a NULL-terminated array of
    // NUL-terminated strings; the secret entries are found there, taken out
    // of the array by `remove_var`, and only then (no longer reachable
    // through `environ`) overwritten within their own length.
    let entries: Vec<(*mut u8, usize)> = unsafe {
        let mut found = Vec::new();
        let mut entry = libc::environ;
        while !entry.is_null() && !(*entry).is_null() {
            let bytes = std::ffi::CStr::from_ptr(*entry).to_bytes();
            let secret = SECRET_ENV.iter().any(|name| {
                bytes.len() > name.len() && bytes.starts_with(name.as_bytes()) && bytes[name.len()] == b'='
            });
            if secret {
                found.push(((*entry).cast::<u8>(), bytes.len()));
            }
            entry = entry.add(1);
        }
        found
    };
    for name in SECRET_ENV {
        std::env::remove_var(name);
    }
    for (start, len) in entries {
        // SAFETY: as above; each write stays within one entry's bytes.
        unsafe { std::ptr::write_bytes(start, 0, len) };
    }
}

/// Makes this process non-dumpable: its memory, environment and file
/// descriptors are then out of reach of other processes of the same user
/// (the children it starts among them). Also means no core dumps.
pub fn harden_server() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "could not make the server non-dumpable");
    }
}

/// Opens an absolute directory path one component at a time, refusing any
/// component that is a symbolic link. The path stored for a workspace is
/// canonical, so a link anywhere in it means it was swapped after it was
/// registered.
pub fn open_dir_nofollow(path: &Path) -> io::Result<OwnedFd> {
    if !path.is_absolute() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the workspace path is not absolute"));
    }
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = nix::fcntl::open("/", flags, Mode::empty()).map_err(io::Error::from)?;
    for component in path.components() {
        match component {
            Component::RootDir => {}
            Component::Normal(name) => {
                dir = nix::fcntl::openat(dir.as_fd(), name, flags, Mode::empty()).map_err(|e| {
                    let why = match e {
                        nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => {
                            "it is no longer the directory that was registered (a link or a file is in its place)"
                        }
                        nix::errno::Errno::ENOENT => "it does not exist any more",
                        _ => "it cannot be opened",
                    };
                    io::Error::new(io::ErrorKind::PermissionDenied, format!("workspace {}: {why}", path.display()))
                })?;
            }
            _ => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "the workspace path is not canonical"));
            }
        }
    }
    Ok(dir)
}

/// Sets up, in the forked child before `exec`, what confines it: its
/// cgroup (when there is one: `cgroup_procs` is its open `cgroup.procs`),
/// its working directory (the open `dir`), the death signal, and the
/// dropped capability.
pub fn confine_child(cmd: &mut Command, dir: RawFd, cgroup_procs: Option<RawFd>) {
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (fchdir, prctl, getppid); it allocates
    // nothing and touches no lock.
    let server = std::process::id() as libc::pid_t;
    unsafe {
        cmd.pre_exec(move || {
            // Into the run's cgroup first, so everything it starts is there
            // too. ("0" is the writer itself.) Without it, the process group
            // still holds what does not leave it.
            if let Some(procs) = cgroup_procs {
                libc::write(procs, b"0".as_ptr().cast(), 1);
            }
            if libc::fchdir(dir) != 0 {
                return Err(io::Error::last_os_error());
            }
            // SIGKILL when the thread that started us goes away: tokio's
            // worker threads live as long as the server's runtime, so in
            // practice when the server dies, however it dies.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The server may have died between fork and prctl. (An OS
            // error: nothing may be allocated here.)
            if libc::getppid() != server {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            // Fails with EPERM without CAP_SETPCAP; then there was no
            // capability to drop either.
            libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0);
            Ok(())
        });
    }
}

/// A cgroup (v2) holding one run's processes: every process `claude`
/// starts, also one that leaves its process group or session (`setsid …
/// &`), stays in it, so the whole tree can be killed when the run ends, or
/// by the next server when this one died. Created under the server's own
/// cgroup, as `claude-graphql/run-<execution id>`; where cgroups cannot be
/// created (no cgroup2 mount, no permission) runs go without one and the
/// process group is all there is.
pub struct RunCgroup {
    dir: std::path::PathBuf,
    procs: OwnedFd,
}

impl RunCgroup {
    /// A new, empty cgroup for the run `name`, if cgroups can be made here.
    pub fn create(name: &str) -> Option<RunCgroup> {
        let dir = runs_dir()?.join(format!("run-{name}"));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::debug!(error = %e, dir = %dir.display(), "no cgroup for the run");
            return None;
        }
        let procs = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs")).ok()?;
        Some(RunCgroup { dir, procs: procs.into() })
    }

    /// `cgroup.procs`, open for writing: a process that writes `0` to it
    /// moves itself in (see [`confine_child`]).
    pub fn procs_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.procs.as_raw_fd()
    }

    /// Kills every process in the cgroup and removes it.
    pub async fn kill_and_remove(self) {
        kill_dir(&self.dir).await;
    }

    /// Removes the cgroup of a run that never started.
    pub fn discard(self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Kills what is left in the cgroup of an execution whose server is gone
/// (a restarted server's recovery).
pub async fn kill_leftovers(name: &str) {
    if let Some(dir) = runs_dir().map(|d| d.join(format!("run-{name}"))).filter(|d| d.is_dir()) {
        kill_dir(&dir).await;
    }
}

/// Kills every process in the cgroup `dir` (`cgroup.kill`, or SIGKILL to
/// each member on kernels without it) and removes the directory once empty.
async fn kill_dir(dir: &Path) {
    let killed = std::fs::write(dir.join("cgroup.kill"), "1").is_ok();
    for _ in 0..50 {
        if !killed {
            for pid in std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines() {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
                }
            }
        }
        // A cgroup can be removed once its last process is gone.
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tracing::warn!(dir = %dir.display(), "a run's cgroup could not be removed");
}

/// `<cgroup2 mount>/<this process's cgroup>/claude-graphql`, if there is a
/// cgroup2 hierarchy.
fn runs_dir() -> Option<std::path::PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // Fields: id parent major:minor root mount-point options ... - fstype ...
    let (root, mount) = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut fields = left.split_whitespace().skip(3);
        Some((fields.next()?.to_owned(), fields.next()?.replace("\\040", " ")))
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|line| line.strip_prefix("0::"))?;
    // The mount shows the hierarchy from `root` down (a container's view).
    let path = path.strip_prefix(root.trim_end_matches('/')).unwrap_or(path);
    Some(Path::new(&mount).join(path.trim_start_matches('/')).join("claude-graphql"))
}
