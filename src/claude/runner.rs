//! The task that owns one running `claude` process.
//!
//! One `select!` loop owns the `Child`: it reads stdout line by line, waits
//! for the exit, and reacts to a stop request or the run's deadline, so no
//! state is shared with anything else. Stopping escalates: the in-band
//! `interrupt` control request and EOF first (Claude ends the turn cleanly
//! and its partial output is still stored), then SIGTERM, then SIGKILL to
//! the whole process group, each after a grace period.

use std::{
    collections::HashSet,
    io,
    sync::{Arc, OnceLock},
    time::Duration,
};

use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin},
    sync::{mpsc, oneshot},
    time::{sleep_until, Instant},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use super::{
    command::{control_response, interrupt_request, user_message, ClaudeCommand, UserContent},
    stream::{Line, LineKind, ResultLine, STDERR},
    ClaudeError,
};

/// How long stdout may stay open after the process exited (a grandchild
/// holding the pipe) before the group is killed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// How much of stderr is quoted in a CLAUDE_EXITED error.
const STDERR_TAIL: usize = 2048;

/// What a client can ask of a running `claude`, besides stopping it.
#[derive(Debug)]
pub enum RunCommand {
    /// End the running turn cleanly: the `interrupt` control request. The
    /// process stays and ends when no turn is left.
    Interrupt,
    /// A follow-up user message with our `uuid` (`now`: replace the running
    /// turn). Replies, if asked, once it is written, or with why it cannot be.
    Message { content: UserContent, uuid: Uuid, now: bool, reply: Option<oneshot::Sender<Result<Uuid, String>>> },
    /// The answer to a permission prompt, as the `response` object the CLI
    /// expects (`{"behavior": "allow", ...}` or `{"behavior": "deny", ...}`).
    Answer { request_id: String, response: serde_json::Value },
}

/// Why a run was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A client cancelled it.
    Cancel,
    /// It ran past its time limit.
    Timeout,
    /// The server is shutting down.
    Shutdown,
}

/// Asks one run to stop; cheap to clone, first reason wins.
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl StopHandle {
    /// A handle that also fires when `parent` is cancelled (server shutdown).
    pub fn child_of(parent: &CancellationToken) -> Self {
        Self { token: parent.child_token(), reason: Arc::default() }
    }

    pub fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Fires when the run is asked to stop.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The reason, once stopped; a parent's cancellation means shutdown.
    pub fn reason(&self) -> Option<StopReason> {
        self.is_stopped().then(|| self.reason.get().copied().unwrap_or(StopReason::Shutdown))
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    Cancelled,
    Failed(ClaudeError),
}

/// Everything the runner learned about a finished run.
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    /// The last `result` line, if any came.
    pub result: Option<ResultLine>,
    /// When the usage or rate limit that a `rate_limit_event` line said was
    /// hit ends.
    pub limit_resets_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Limits that apply to every run.
#[derive(Debug, Clone)]
pub struct Runner {
    pub max_line_bytes: usize,
    pub grace: Duration,
    pub timeout: Duration,
}

/// Where the stop sequence stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Interrupt sent and stdin closed; SIGTERM comes at the deadline.
    Interrupted,
    /// SIGTERM sent; SIGKILL comes at the deadline.
    Terminated,
    /// SIGKILL sent; nothing more to do but reap.
    Killed,
}

impl Runner {
    /// Runs `cmd` with `prompt` to the end, sending every stdout line (and
    /// every stderr line) to `sink` in the order read. Returns when the
    /// process has exited and its output is drained.
    pub async fn run(
        &self,
        cmd: &ClaudeCommand,
        prompt: &UserContent,
        sink: mpsc::Sender<Line>,
        commands: mpsc::Receiver<RunCommand>,
        stop: StopHandle,
    ) -> RunEnd {
        // The MCP config file stays until the process is gone.
        let super::command::Spawned { mut child, cgroup, mcp_config: _mcp_config } = match cmd.spawn() {
            Ok(spawned) => spawned,
            Err(e) => {
                return RunEnd {
                    outcome: Outcome::Failed(ClaudeError::SpawnFailed {
                        bin: cmd.bin.display().to_string(),
                        reason: e.to_string(),
                    }),
                    exit_code: None,
                    result: None,
                    limit_resets_at: None,
                }
            }
        };
        let mut process = Process::new(&mut child, sink.clone(), self.max_line_bytes, self.grace);
        process.commands = Some(commands);
        let first = Uuid::new_v4();
        process.outstanding.insert(first.to_string());
        process.send_line(user_message(prompt, first, false));
        let mut end = process.drive(&mut child, stop, self).await;
        // The CLI ends with success even when the model never gave output
        // that matched the schema: that is no answer for a client that
        // asked for one.
        let answered =
            end.result.as_ref().and_then(|r| r.raw.as_ref()).is_some_and(|r| !r["structured_output"].is_null());
        if cmd.options.output_schema.is_some() && matches!(end.outcome, Outcome::Completed) && !answered {
            end.outcome = Outcome::Failed(ClaudeError::NoStructuredOutput);
        }
        // Nothing of the run may outlive it, also what left its group.
        if let Some(cgroup) = cgroup {
            cgroup.kill_and_remove().await;
        }
        end
    }
}

/// The state of one process while it runs.
struct Process {
    pgid: Option<Pid>,
    /// Lines for claude's stdin, written by a task of their own (see
    /// [`StdinWriter`]); None once stdin is to be closed.
    stdin: Option<StdinWriter>,
    /// A line read but not yet taken by the sink: reading pauses until it
    /// is (backpressure), while the loop keeps serving stops and commands.
    pending: Option<Line>,
    stdout: Option<BufReader<tokio::process::ChildStdout>>,
    stderr_task: Option<tokio::task::JoinHandle<String>>,
    sink: mpsc::Sender<Line>,
    max_line_bytes: usize,
    buf: Vec<u8>,
    last_result: Option<ResultLine>,
    limit_resets_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Our user messages whose turn has not ended (no `result` listed them
    /// in `user_message_uuids` yet); stdin closes when none is left.
    outstanding: HashSet<String>,
    commands: Option<mpsc::Receiver<RunCommand>>,
    /// A client interrupted the turn (an aborted result is then a cancel).
    interrupted_by_user: bool,
    /// When an interrupt not honoured by then (no `result`: a stopped
    /// process, a hung tool) becomes a cancel.
    interrupt_deadline: Option<Instant>,
    grace: Duration,
}

impl Process {
    fn new(child: &mut Child, sink: mpsc::Sender<Line>, max_line_bytes: usize, write_timeout: Duration) -> Self {
        let stderr_task = child.stderr.take().map(|stderr| tokio::spawn(forward_stderr(stderr, sink.clone())));
        Self {
            pgid: child.id().map(|id| Pid::from_raw(id as i32)),
            stdin: child.stdin.take().map(|stdin| StdinWriter::spawn(stdin, write_timeout)),
            pending: None,
            stdout: child.stdout.take().map(|s| BufReader::with_capacity(64 * 1024, s)),
            stderr_task,
            sink,
            max_line_bytes,
            buf: Vec::new(),
            last_result: None,
            limit_resets_at: None,
            outstanding: HashSet::new(),
            commands: None,
            interrupted_by_user: false,
            interrupt_deadline: None,
            grace: write_timeout,
        }
    }

    async fn drive(mut self, child: &mut Child, stop: StopHandle, limits: &Runner) -> RunEnd {
        let deadline = Instant::now() + limits.timeout;
        let mut phase = Phase::Running;
        let mut phase_deadline = Instant::now();
        let mut failure: Option<ClaudeError> = None;
        // Set when the stop was asked for before the final result came.
        let mut stopped_for: Option<StopReason> = None;
        // Some(code) once the process has exited (code is None for a signal).
        let mut exit: Option<Option<i32>> = None;
        let mut drain_deadline = None;

        // A handle of its own, so that waiting for room in it borrows
        // nothing of `self`.
        let sink = self.sink.clone();
        loop {
            if exit.is_some() && self.stdout.is_none() && self.pending.is_none() {
                break;
            }
            tokio::select! {
                read = read_line(self.stdout.as_mut(), &mut self.buf, self.max_line_bytes), if self.stdout.is_some() && self.pending.is_none() => {
                    match read {
                        Ok(true) => {
                            self.on_line();
                            // Still writing after its exit (a grandchild, or
                            // lines we had not read yet): not cut off while
                            // lines keep coming.
                            if drain_deadline.is_some() {
                                drain_deadline = Some(Instant::now() + DRAIN_AFTER_EXIT);
                            }
                        }
                        Ok(false) => self.stdout = None,
                        Err(e) => {
                            warn!(error = %e, "stopping claude: unusable stdout");
                            self.stdout = None;
                            if failure.is_none() {
                                failure = Some(if e.kind() == io::ErrorKind::InvalidData {
                                    ClaudeError::LineTooLong { limit: self.max_line_bytes }
                                } else {
                                    ClaudeError::Error(format!("reading claude's output failed: {e}"))
                                });
                            }
                            // Nothing it says can be read any more: no point in
                            // a polite interrupt.
                            self.signal(Signal::SIGTERM);
                            phase = Phase::Terminated;
                            phase_deadline = Instant::now() + limits.grace;
                        }
                    }
                }
                permit = sink.reserve(), if self.pending.is_some() => {
                    // A closed sink means nobody records this run any more;
                    // the line is dropped and reading goes on, so the child
                    // never blocks on a full pipe.
                    if let (Ok(permit), Some(line)) = (permit, self.pending.take()) {
                        permit.send(line);
                    }
                }
                status = child.wait(), if exit.is_none() => {
                    exit = Some(status.ok().and_then(|s| s.code()));
                    drain_deadline = Some(Instant::now() + DRAIN_AFTER_EXIT);
                }
                command = next_command(&mut self.commands), if self.commands.is_some() => match command {
                    Some(command) => self.on_command(command),
                    None => self.commands = None,
                },
                _ = stop.token.cancelled(), if phase == Phase::Running => {
                    // A stop after a successful final result changes nothing
                    // about the outcome; the process is wound down anyway.
                    if self.last_result.as_ref().is_none_or(|r| r.is_error) {
                        stopped_for = stop.reason();
                    }
                    self.interrupt();
                    phase = Phase::Interrupted;
                    phase_deadline = Instant::now() + limits.grace;
                }
                // (Not while reading is paused for the store: the answer may
                // be in the pipe.)
                _ = sleep_until(self.interrupt_deadline.unwrap_or_else(Instant::now)), if self.interrupt_deadline.is_some() && phase == Phase::Running && self.pending.is_none() => {
                    // The interrupt was not honoured in time: it becomes a
                    // cancel, straight to SIGTERM (with SIGCONT, in case the
                    // process is stopped).
                    warn!("claude did not honour the interrupt; stopping it");
                    self.interrupt_deadline = None;
                    stopped_for = Some(StopReason::Cancel);
                    self.stdin = None;
                    self.terminate();
                    phase = Phase::Terminated;
                    phase_deadline = Instant::now() + limits.grace;
                }
                _ = sleep_until(deadline), if phase == Phase::Running => {
                    stop.stop(StopReason::Timeout);
                }
                _ = sleep_until(phase_deadline), if matches!(phase, Phase::Interrupted | Phase::Terminated) && exit.is_none() => {
                    let signal = if phase == Phase::Interrupted { Signal::SIGTERM } else { Signal::SIGKILL };
                    debug!(?signal, "claude did not stop in time");
                    if signal == Signal::SIGTERM {
                        self.terminate();
                    } else {
                        self.signal(signal);
                    }
                    phase = if phase == Phase::Interrupted { Phase::Terminated } else { Phase::Killed };
                    phase_deadline = Instant::now() + limits.grace;
                }
                _ = sleep_until(drain_deadline.unwrap_or_else(Instant::now)), if drain_deadline.is_some() && self.stdout.is_some() && self.pending.is_none() => {
                    // claude is gone but something it started still holds stdout.
                    self.stdout = None;
                }
            }
        }
        // Nothing of the group may outlive the run (a tool's background job).
        self.signal(Signal::SIGKILL);
        let stderr_tail = match self.stderr_task.take() {
            Some(mut task) => match tokio::time::timeout(DRAIN_AFTER_EXIT, &mut task).await {
                Ok(tail) => tail.unwrap_or_default(),
                Err(_) => {
                    // Something that left the process group still holds
                    // stderr: stop reading it, or the sink never closes.
                    task.abort();
                    String::new()
                }
            },
            None => String::new(),
        };
        let exit_code = exit.flatten();
        let outcome = classify(
            self.interrupted_by_user,
            failure,
            stopped_for,
            self.last_result.as_ref(),
            exit_code,
            &stderr_tail,
            limits,
        );
        RunEnd { outcome, exit_code, result: self.last_result, limit_resets_at: self.limit_resets_at }
    }

    fn on_line(&mut self) {
        let line = Line::parse(&self.buf);
        self.buf.clear();
        if line.type_name == "rate_limit_event" {
            if let Some(at) = super::limits::from_event(&line.payload) {
                self.limit_resets_at = Some(at);
            }
        }
        if line.kind == LineKind::Result {
            let result = ResultLine::parse(&line.payload);
            // One result may end the turns of several of our messages.
            // A result that names none of ours (an older CLI, or one that
            // does not track our ids) ends them all.
            let listed = result.raw.as_ref().and_then(|r| r.get("user_message_uuids")).and_then(|u| u.as_array());
            let ended = listed.map_or(0, |uuids| {
                uuids.iter().filter_map(|u| u.as_str()).filter(|u| self.outstanding.remove(*u)).count()
            });
            if ended == 0 {
                self.outstanding.clear();
            }
            // The turn ended: an interrupt was honoured.
            self.interrupt_deadline = None;
            self.last_result = Some(result);
            if self.outstanding.is_empty() {
                // No turn left: EOF lets claude finish and exit.
                self.stdin = None;
            }
        }
        self.pending = Some(line);
    }

    /// Never waits: what goes to stdin is queued for its writer.
    fn on_command(&mut self, command: RunCommand) {
        match command {
            // No turn left (its stdin is closed): nothing to interrupt.
            RunCommand::Interrupt if self.stdin.is_none() => {}
            RunCommand::Interrupt => {
                self.interrupted_by_user = true;
                self.interrupt_deadline.get_or_insert(Instant::now() + self.grace);
                self.send_line(interrupt_request(&format!("interrupt-{}", Uuid::new_v4())));
            }
            RunCommand::Message { content, uuid, now, reply } => match &self.stdin {
                None => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err("the run has ended its last turn".into()));
                    }
                }
                Some(stdin) => {
                    self.outstanding.insert(uuid.to_string());
                    // The writer replies once it is written, or why not.
                    stdin.send(user_message(&content, uuid, now), reply.map(|r| (uuid, r)));
                }
            },
            RunCommand::Answer { request_id, response } => {
                self.send_line(control_response(&request_id, &response));
            }
        }
    }

    fn send_line(&mut self, line: String) {
        if let Some(stdin) = &self.stdin {
            stdin.send(line, None);
        }
    }

    /// The interrupt, then EOF (once the writer has written what it has).
    fn interrupt(&mut self) {
        self.send_line(interrupt_request(&format!("interrupt-{}", Uuid::new_v4())));
        self.stdin = None;
    }

    /// SIGTERM to the group, and SIGCONT so that a stopped process gets to
    /// handle it.
    fn terminate(&self) {
        self.signal(Signal::SIGTERM);
        self.signal(Signal::SIGCONT);
    }

    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH just means the group is already gone.
            let _ = killpg(pgid, signal);
        }
    }
}

/// What a reply to a written follow-up message carries.
type WrittenReply = (Uuid, oneshot::Sender<Result<Uuid, String>>);

/// Writes lines to claude's stdin on a task of its own, so that the loop
/// that owns the child never waits for a child that does not read (its
/// stop and its deadline stay responsive). Dropping it closes stdin once
/// the queued lines are written; a write that fails or takes longer than
/// the timeout closes it at once.
struct StdinWriter {
    lines: mpsc::UnboundedSender<(String, Option<WrittenReply>)>,
}

impl StdinWriter {
    fn spawn(mut stdin: ChildStdin, timeout: Duration) -> Self {
        let (lines, mut queue) = mpsc::unbounded_channel::<(String, Option<WrittenReply>)>();
        tokio::spawn(async move {
            let mut open = true;
            while let Some((line, reply)) = queue.recv().await {
                let written = if open {
                    let mut bytes = line.into_bytes();
                    bytes.push(b'\n');
                    match tokio::time::timeout(timeout, stdin.write_all(&bytes)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => {
                            debug!(error = %e, "claude's stdin is closed");
                            Err("claude's input is closed".to_owned())
                        }
                        Err(_) => {
                            warn!("claude does not read its stdin; closing it");
                            Err("claude does not read its input".to_owned())
                        }
                    }
                } else {
                    Err("claude's input is closed".to_owned())
                };
                open &= written.is_ok();
                if let Some((uuid, reply)) = reply {
                    let _ = reply.send(written.map(|()| uuid));
                }
                if !open {
                    // Later lines are answered with the error; stdin is
                    // shut so that claude sees EOF.
                    let _ = stdin.shutdown().await;
                }
            }
            // Every sender is gone: EOF.
        });
        Self { lines }
    }

    fn send(&self, line: String, reply: Option<WrittenReply>) {
        // The writer ends only when this sender is dropped.
        let _ = self.lines.send((line, reply));
    }
}

/// The next command, for the select loop (None: no more will come).
async fn next_command(commands: &mut Option<mpsc::Receiver<RunCommand>>) -> Option<RunCommand> {
    match commands {
        Some(commands) => commands.recv().await,
        None => std::future::pending().await,
    }
}

fn classify(
    interrupted_by_user: bool,
    failure: Option<ClaudeError>,
    stopped_for: Option<StopReason>,
    result: Option<&ResultLine>,
    exit_code: Option<i32>,
    stderr_tail: &str,
    limits: &Runner,
) -> Outcome {
    if let Some(failure) = failure {
        return Outcome::Failed(failure);
    }
    match stopped_for {
        Some(StopReason::Cancel) => return Outcome::Cancelled,
        Some(StopReason::Shutdown) => return Outcome::Failed(ClaudeError::Interrupted),
        Some(StopReason::Timeout) => {
            return Outcome::Failed(ClaudeError::Timeout(humantime::format_duration(limits.timeout).to_string()))
        }
        None => {}
    }
    let Some(result) = result else {
        let stderr = if stderr_tail.trim().is_empty() { String::new() } else { format!(": {}", stderr_tail.trim()) };
        return Outcome::Failed(ClaudeError::Exited { exit_code, stderr });
    };
    let aborted = result.terminal_reason.as_deref().is_some_and(|r| r.starts_with("aborted"));
    if interrupted_by_user && aborted {
        return Outcome::Cancelled;
    }
    match (result.subtype.as_deref(), result.terminal_reason.as_deref()) {
        (Some("error_max_turns"), _) | (_, Some("max_turns")) => {
            Outcome::Failed(ClaudeError::MaxTurns(result.message()))
        }
        (Some("error_max_budget_usd"), _) | (_, Some("budget_exhausted")) => {
            Outcome::Failed(ClaudeError::BudgetExceeded(result.message()))
        }
        _ if result.is_error && result.is_rate_limited() => Outcome::Failed(ClaudeError::RateLimited(result.message())),
        _ if result.is_error || result.subtype.as_deref().is_some_and(|s| s.starts_with("error")) => {
            Outcome::Failed(ClaudeError::Error(result.message()))
        }
        _ => Outcome::Completed,
    }
}

/// Reads one `\n`-terminated line into `buf` (without the newline). Returns
/// `Ok(false)` at EOF. Cancel-safe: bytes already read stay in `buf`, which
/// is only cleared by the caller once a whole line was handled.
async fn read_line<R: AsyncBufRead + Unpin>(reader: Option<&mut R>, buf: &mut Vec<u8>, max: usize) -> io::Result<bool> {
    let Some(reader) = reader else { return Ok(false) };
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            // EOF: a last line without a newline still counts.
            return Ok(!buf.is_empty());
        }
        // A vectorised search: byte by byte, it took 7% of the server's
        // instructions for a line.
        let (used, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => {
                buf.extend_from_slice(&chunk[..i]);
                (i + 1, true)
            }
            None => {
                buf.extend_from_slice(chunk);
                (chunk.len(), false)
            }
        };
        reader.consume(used);
        if buf.len() > max {
            buf.clear();
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("line longer than {max} bytes")));
        }
        if done {
            return Ok(true);
        }
    }
}

/// Forwards stderr lines as log lines; returns the tail for error messages.
/// A longer stderr line is replaced by a note saying so.
const STDERR_LINE: usize = 64 * 1024;

async fn forward_stderr(stderr: tokio::process::ChildStderr, sink: mpsc::Sender<Line>) -> String {
    let mut reader = BufReader::new(stderr);
    let mut tail = String::new();
    let mut buf = Vec::new();
    loop {
        let text = match read_line(Some(&mut reader), &mut buf, STDERR_LINE).await {
            Ok(true) => String::from_utf8_lossy(&std::mem::take(&mut buf)).into_owned(),
            Ok(false) => break,
            // Too long: skip to the end of that line, say so.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                while let Err(e) = read_line(Some(&mut reader), &mut buf, STDERR_LINE).await {
                    if e.kind() != io::ErrorKind::InvalidData {
                        break;
                    }
                }
                buf.clear();
                format!("[a stderr line longer than {STDERR_LINE} bytes was dropped]")
            }
            Err(_) => break,
        };
        tail.push_str(&text);
        tail.push('\n');
        if tail.len() > STDERR_TAIL {
            let cut = tail.len() - STDERR_TAIL;
            let cut = (cut..tail.len()).find(|&i| tail.is_char_boundary(i)).unwrap_or(tail.len());
            tail.drain(..cut);
        }
        let _ = sink.send(Line::text(STDERR, &text)).await;
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_line_splits_and_caps() {
        let data: &[u8] = b"{\"a\":1}\n\nlast";
        let mut reader = BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while read_line(Some(&mut reader), &mut buf, 100).await.unwrap() {
            lines.push(String::from_utf8(std::mem::take(&mut buf)).unwrap());
        }
        assert_eq!(lines, ["{\"a\":1}", "", "last"]);

        let long = [b'x'; 50];
        let mut reader = BufReader::with_capacity(8, &long[..]);
        assert!(read_line(Some(&mut reader), &mut Vec::new(), 20).await.is_err());
    }
}
