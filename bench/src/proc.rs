//! Figures read from /proc: CPU time and memory of a process, and core
//! pinning.

use std::time::Duration;

/// User + system CPU time of `pid` so far (all its threads, also those
/// that have ended; not its children).
///
/// From the process's CPU clock, in nanoseconds: /proc counts in ticks of
/// 10 ms, and a fast process (the ceiling) uses only a few of them in a
/// scenario. /proc is the fallback.
pub fn cpu_time(pid: u32) -> Duration {
    use nix::time::{clock_getcpuclockid, clock_gettime};
    let clock = clock_getcpuclockid(nix::unistd::Pid::from_raw(pid as i32));
    match clock.and_then(clock_gettime) {
        Ok(time) => Duration::new(time.tv_sec() as u64, time.tv_nsec() as u32),
        Err(_) => cpu_ticks(pid),
    }
}

/// User + system CPU time of `pid` from /proc, in ticks.
fn cpu_ticks(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// Resident memory of `pid`, in bytes.
pub fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Pins the calling thread's process to one core (if the machine has it).
pub fn pin_self(core: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(core).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// Raises the open-file limit for tens of thousands of sockets: past the
/// hard limit where allowed (as root), else to the hard limit.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    const WANTED: u64 = 200_000;
    if setrlimit(Resource::RLIMIT_NOFILE, WANTED, WANTED).is_err() {
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Percentile of sorted samples (p in 0..=100).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
