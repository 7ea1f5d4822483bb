//! A stand-in for the Claude Code CLI, for tests and for trying the API
//! without a Claude account.
//!
//! It speaks the bidirectional stream-json protocol the way the recordings
//! in `tests/fixtures/` show the real CLI doing it: it waits for a user
//! message on stdin, answers with `command_lifecycle`, `system`/`init`,
//! `assistant` and `result` lines, honours the `interrupt` control request,
//! and exits once stdin is closed.
//!
//! What it does is chosen by the prompt. A plain prompt gets an echo. A
//! prompt that starts with `fake:` holds directives, e.g.
//! `fake: fixture=tool_bash delay_ms=50`:
//!
//! | directive | effect |
//! |---|---|
//! | `fixture=NAME` | replay a recording (text, thinking, tool_bash, three_tools, tool_write, subagent_task, text_partial_messages, max_turns_1, error_500, rate_limit, usage_limit, budget) |
//! | `resets_in=S` | after `init`, a `rate_limit_event` saying the limit was hit and resets in S seconds (the shape subscription auth gives; the recordings, made with an API key, have none) |
//! | `messages=N size=B` | N assistant messages of about B bytes of text each |
//! | `delay_ms=N` | pause N ms before each line |
//! | `huge=B` | one assistant line of B bytes |
//! | `garbage` | a line that is not JSON, among the others |
//! | `stderr=TEXT` | write TEXT (underscores become spaces) to stderr |
//! | `no_result` | stop before the result and exit with `exit` (default 3) |
//! | `error_result` | end with an error result (is_error) |
//! | `max_turns` | end with `error_max_turns` |
//! | `hang` | after `init`, wait; only an interrupt ends the turn |
//! | `ignore_interrupt` | never answer the interrupt, never exit on EOF |
//! | `ignore_term` | ignore SIGTERM (only SIGKILL stops it) |
//! | `ask=TOOL` | after `init`, a `can_use_tool` permission prompt for TOOL; waits for the answer |
//! | `wait_for=PATH` | after `init`, wait until PATH exists (benchmarks start the burst this way) |
//! | `background=group` / `background=escape` | leave a `sleep 600` behind, in our process group / in a session of its own |
//! | `pause_at=N pause_ms=M` | before line N, be quiet for M ms |
//! | `deaf` | read nothing more from stdin (a hung tool) |
//! | `exit=N` | exit code at the end |
//! | `edit=A,B` | append a line to each file (made if missing) through Write calls, with the CLI's result lines |
//! | `rm=FILE` | delete a file, as a shell command would (no tool result says so) |
//! | `no_structured` | with `--json-schema`, never give the structured output |
//!
//! With `--json-schema`, a synthetic turn answers through the
//! StructuredOutput tool with a value of the schema's shape, and the result
//! carries it as `structured_output`, as the CLI's does.
//!
//! A synthetic turn costs $0.0123; with `--max-budget-usd` below that it
//! ends with `error_max_budget_usd`, as the CLI does when a reply goes over.
//!
//! If the working directory has a `.fake-claude/` directory, every start,
//! stdin line and exit is logged to `.fake-claude/log.jsonl` there.

use std::{
    collections::HashMap,
    fs::OpenOptions,
    io::{BufRead, Write},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};
use uuid::Uuid;

const FIXTURES: &[(&str, &str)] = &[
    ("text", include_str!("../../tests/fixtures/text.jsonl")),
    ("thinking", include_str!("../../tests/fixtures/thinking.jsonl")),
    ("tool_bash", include_str!("../../tests/fixtures/tool_bash.jsonl")),
    ("three_tools", include_str!("../../tests/fixtures/three_tools.jsonl")),
    ("tool_write", include_str!("../../tests/fixtures/tool_write.jsonl")),
    ("subagent_task", include_str!("../../tests/fixtures/subagent_task.jsonl")),
    ("text_partial_messages", include_str!("../../tests/fixtures/text_partial_messages.jsonl")),
    ("max_turns_1", include_str!("../../tests/fixtures/max_turns_1.jsonl")),
    ("error_500", include_str!("../../tests/fixtures/error_500.jsonl")),
    ("rate_limit", include_str!("../../tests/fixtures/control/rate_limit_429_no_retry.jsonl")),
    ("usage_limit", include_str!("../../tests/fixtures/control/usage_limit_429_no_retry.jsonl")),
    ("budget", include_str!("../../tests/fixtures/control/budget_max_budget_usd.jsonl")),
];

/// Writes whole lines to stdout; shared by the main thread and the stdin
/// reader (which answers control requests at once, as the CLI does).
#[derive(Clone)]
struct Out(Arc<Mutex<std::io::Stdout>>);

impl Out {
    fn line(&self, line: &str) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // A closed stdout means the host is gone: nothing left to do.
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            std::process::exit(141);
        }
    }
}

/// What the stdin reader has seen.
#[derive(Default)]
struct Input {
    interrupted: AtomicBool,
    /// A message with `priority: "now"` came: end the running turn.
    preempted: AtomicBool,
    /// Turns running or waiting.
    turns: std::sync::atomic::AtomicUsize,
    ignore_interrupts: AtomicBool,
    /// Answers to our control requests (permission prompts).
    answers: Mutex<Vec<Value>>,
    eof: AtomicBool,
}

struct Log(Option<Mutex<std::fs::File>>);

impl Log {
    fn open() -> Log {
        let dir = Path::new(".fake-claude");
        Log(dir
            .is_dir()
            .then(|| OpenOptions::new().create(true).append(true).open(dir.join("log.jsonl")).ok())
            .flatten()
            .map(Mutex::new))
    }

    fn write(&self, entry: Value) {
        if let Some(file) = &self.0 {
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            // One write per line: several processes may append to the log.
            let _ = file.write_all(format!("{entry}\n").as_bytes());
        }
    }
}

/// The `init` line's `mcp_servers` for `--mcp-config` (a file or a JSON
/// string), which is logged: a stdio server whose program is not there
/// `failed`, as the CLI reports it; the others are taken as `connected`.
fn mcp_servers(config: Option<String>, log: &Log) -> Value {
    let Some(config) = config else { return json!([]) };
    let text = std::fs::read_to_string(&config).unwrap_or(config);
    let config: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    log.write(json!({"event": "mcp_config", "config": config}));
    let servers = config["mcpServers"].as_object().cloned().unwrap_or_default();
    let status = |server: &Value| match server["command"].as_str() {
        Some(command) if !Path::new(command).is_file() => "failed",
        _ => "connected",
    };
    servers.iter().map(|(name, server)| json!({"name": name, "status": status(server), "source": "dynamic"})).collect()
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let log = Arc::new(Log::open());
    let secrets: Vec<&str> =
        ["JWT_SECRET", "DATABASE_URL"].into_iter().filter(|k| std::env::var_os(k).is_some()).collect();
    log.write(json!({
        "event": "start",
        "at": now(),
        "pid": std::process::id(),
        "argv": argv,
        "cwd": std::env::current_dir().ok(),
        "env_secrets": secrets,
        "parent_environ": parent_environ(),
    }));
    let flag = |name: &str| argv.iter().position(|a| a == name).and_then(|i| argv.get(i + 1)).cloned();
    // A fork continues the conversation under a new id, as the CLI does.
    let forked = argv.iter().any(|a| a == "--fork-session");
    let session_id = flag("--resume").filter(|_| !forked).unwrap_or_else(|| Uuid::new_v4().to_string());
    let partial = argv.iter().any(|a| a == "--include-partial-messages");
    let model = flag("--model").unwrap_or_else(|| "claude-fake-1".into());
    let mcp_servers = mcp_servers(flag("--mcp-config"), &log);

    let out = Out(Arc::new(Mutex::new(std::io::stdout())));
    let input = Arc::new(Input::default());
    let (messages, inbox) = std::sync::mpsc::channel();
    {
        let (out, input, log) = (out.clone(), input.clone(), log.clone());
        thread::spawn(move || read_stdin(out, input, log, messages));
    }
    // Nothing happens until the first user message (as with the real CLI);
    // each message is a turn; the process ends when stdin does.
    let mut code = 0;
    let mut first = true;
    while let Ok(message) = inbox.recv() {
        let directives = Directives::parse(&message.text);
        if first && directives.has("ignore_term") {
            // SAFETY: installing SIG_IGN has no handler code to be unsafe in.
            unsafe {
                let _ =
                    nix::sys::signal::signal(nix::sys::signal::Signal::SIGTERM, nix::sys::signal::SigHandler::SigIgn);
            }
        }
        first = false;
        if let Some(how) = directives.0.get("background") {
            background(how, &log);
        }
        input.ignore_interrupts.store(directives.has("ignore_interrupt"), Ordering::SeqCst);
        let turn = Turn {
            out: out.clone(),
            session_id: session_id.clone(),
            directives,
            input: input.clone(),
            started: Instant::now(),
            max_budget_usd: flag("--max-budget-usd").and_then(|v| v.parse().ok()),
            mcp_servers: mcp_servers.clone(),
            output_schema: flag("--json-schema").and_then(|s| serde_json::from_str(&s).ok()),
        };
        code = turn.play(&message.text, &model, partial, message.uuid.as_deref());
        // An interrupt or a "now" ends one turn: the next starts afresh.
        input.interrupted.store(false, Ordering::SeqCst);
        input.preempted.store(false, Ordering::SeqCst);
        input.turns.fetch_sub(1, Ordering::SeqCst);
    }
    log.write(json!({"event": "exit", "code": code}));
    std::process::exit(code);
}

/// Leaves a process behind, as a tool's background job would: `group`
/// stays in our process group, `escape` starts a session of its own
/// (`setsid … &`). Its pid goes to the log.
fn background(how: &str, log: &Log) {
    use std::os::unix::process::CommandExt;
    let mut sleep = std::process::Command::new("sleep");
    sleep
        .arg("600")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if how == "escape" {
        // SAFETY: setsid is async-signal-safe and allocates nothing.
        unsafe {
            sleep.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
        }
    }
    if let Ok(child) = sleep.spawn() {
        log.write(json!({"event": "background", "how": how, "pid": child.id()}));
    }
}

/// What a hostile child would find in its parent's environment: the
/// secret names it can read there, or why it cannot read it.
fn parent_environ() -> Value {
    let ppid = nix::unistd::getppid();
    match std::fs::read(format!("/proc/{ppid}/environ")) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let found: Vec<&str> = ["JWT_SECRET", "DATABASE_URL"]
                .into_iter()
                .filter(|k| {
                    text.split('\0').any(|entry| entry.strip_prefix(&format!("{k}=")).is_some_and(|v| !v.is_empty()))
                })
                .collect();
            json!({ "readable": true, "secrets": found })
        }
        Err(e) => json!({ "readable": false, "error": e.to_string() }),
    }
}

/// A user message from stdin.
struct Incoming {
    text: String,
    uuid: Option<String>,
}

/// Reads stdin to its end: user messages go to the main thread, control
/// requests are answered at once.
/// A user message's text; content blocks as their texts, and each image or
/// document as `[image/png, N bytes]` (so a test sees what arrived).
fn message_text(content: &Value) -> String {
    let Some(blocks) = content.as_array() else {
        return content.as_str().map(str::to_owned).unwrap_or_else(|| content.to_string());
    };
    let described: Vec<String> = blocks
        .iter()
        .map(|block| {
            let source = &block["source"];
            match (block["type"].as_str(), source["type"].as_str()) {
                (Some("text"), _) => block["text"].as_str().unwrap_or_default().to_owned(),
                (Some(kind @ ("image" | "document")), Some("base64")) => {
                    use base64::Engine;
                    let data = source["data"].as_str().unwrap_or_default();
                    let size = base64::engine::general_purpose::STANDARD.decode(data).map_or(0, |b| b.len());
                    format!("[{kind} {}, {size} bytes]", source["media_type"].as_str().unwrap_or("?"))
                }
                (Some("document"), Some("text")) => {
                    format!("[document text/plain: {}]", source["data"].as_str().unwrap_or_default())
                }
                _ => format!("[{}]", block),
            }
        })
        .collect();
    described.join(" ")
}

fn read_stdin(out: Out, input: Arc<Input>, log: Arc<Log>, messages: std::sync::mpsc::Sender<Incoming>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        log.write(json!({"event": "stdin", "line": line}));
        if line.trim().is_empty() {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            eprintln!("Error parsing streaming input line (type=unknown, {} chars): SyntaxError", line.len());
            std::process::exit(1);
        };
        if v["type"] == "user" {
            let text = message_text(&v["message"]["content"]);
            if v["priority"] == "now" && input.turns.load(Ordering::SeqCst) > 0 {
                input.preempted.store(true, Ordering::SeqCst);
            }
            input.turns.fetch_add(1, Ordering::SeqCst);
            // A hung tool: nothing more is read from stdin, ever.
            let deaf = text.starts_with("fake:") && text.split_whitespace().any(|w| w == "deaf");
            let _ = messages.send(Incoming { text, uuid: v["uuid"].as_str().map(str::to_owned) });
            if deaf {
                loop {
                    thread::sleep(Duration::from_secs(3600));
                }
            }
        } else if v["type"] == "control_request"
            && v["request"]["subtype"] == "interrupt"
            && !input.ignore_interrupts.load(Ordering::SeqCst)
        {
            out.line(&json!({"type": "control_response", "response": {"subtype": "success", "request_id": v["request_id"], "response": {"still_queued": []}}}).to_string());
            // Idle, it changes nothing (as with the CLI).
            if input.turns.load(Ordering::SeqCst) > 0 {
                input.interrupted.store(true, Ordering::SeqCst);
            }
        } else if v["type"] == "control_response" {
            let _ = input.answers.lock().map(|mut answers| answers.push(v.clone()));
        }
    }
    input.eof.store(true, Ordering::SeqCst);
}

/// `key=value` and bare words after `fake:`.
struct Directives(HashMap<String, String>);

impl Directives {
    fn parse(prompt: &str) -> Directives {
        let body = prompt.trim().strip_prefix("fake:").unwrap_or("");
        Directives(
            body.split_whitespace()
                .map(|word| match word.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (word.to_owned(), String::new()),
                })
                .collect(),
        )
    }

    fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    fn num(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(|v| v.parse().ok())
    }

    fn text(&self, key: &str) -> Option<String> {
        self.0.get(key).map(|v| v.replace('_', " "))
    }
}

struct Turn {
    out: Out,
    session_id: String,
    directives: Directives,
    input: Arc<Input>,
    started: Instant,
    /// `--max-budget-usd`: a turn that would cost more ends as the CLI's
    /// does (`error_max_budget_usd`, the reply's tools not run).
    max_budget_usd: Option<f64>,
    /// `init`'s `mcp_servers`, from `--mcp-config`.
    mcp_servers: Value,
    /// `--json-schema`: the answer comes through the StructuredOutput
    /// tool, as the CLI has the model give it, unless `no_structured`.
    output_schema: Option<Value>,
}

impl Turn {
    /// Plays the turn; returns the exit code.
    fn play(&self, prompt: &str, model: &str, partial: bool, message_uuid: Option<&str>) -> i32 {
        let d = &self.directives;
        if let Some(text) = d.text("stderr") {
            eprintln!("{text}");
        }
        self.lifecycle(message_uuid, "queued");
        self.lifecycle(message_uuid, "started");
        let mut script = match d.0.get("fixture") {
            Some(name) => match recording(name, &self.session_id) {
                Some(lines) => lines,
                None => {
                    eprintln!("fake-claude: no recording named {name}");
                    return 2;
                }
            },
            None => self.synthetic(prompt, model, partial),
        };
        if d.has("garbage") {
            script.insert(1.min(script.len()), "this line is not JSON {".into());
        }
        if let Some(seconds) = d.num("resets_in") {
            script.insert(1.min(script.len()), self.rate_limit_event(seconds));
        }
        let ends_with_result =
            script.last().is_some_and(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == "result"));
        let result = if ends_with_result { script.pop() } else { None };
        let delay = Duration::from_millis(d.num("delay_ms").unwrap_or(0));
        let ignore_interrupt = d.has("ignore_interrupt");

        for (i, line) in script.iter().enumerate() {
            if !delay.is_zero() {
                thread::sleep(delay);
            }
            if let Some(code) = self.stop_if_asked(message_uuid) {
                return code;
            }
            if line.contains(EMIT_PLACEHOLDER) {
                self.out.line(&line.replacen(EMIT_PLACEHOLDER, &format!("\"emit_ns\":{}", now_ns()), 1));
            } else {
                self.out.line(line);
            }
            if d.num("pause_at") == Some(i as u64) {
                // A quiet spell mid-run (after a burst).
                thread::sleep(Duration::from_millis(d.num("pause_ms").unwrap_or(1000)));
            }
            if i == 0 && d.has("hang") {
                return self.hang(message_uuid);
            }
            if i == 0 {
                if let Some(path) = d.0.get("wait_for") {
                    while !Path::new(path).exists() {
                        thread::sleep(Duration::from_millis(2));
                    }
                }
                if let Some(tool) = d.0.get("ask") {
                    if let Some(code) = self.ask_permission(tool, model, message_uuid) {
                        return code;
                    }
                }
            }
        }
        if d.has("no_result") {
            // A crash: gone at once, without a result.
            std::process::exit(d.num("exit").unwrap_or(3) as i32);
        }
        if let Some(code) = self.stop_if_asked(message_uuid) {
            return code;
        }
        let result = result.unwrap_or_else(|| self.result(d, message_uuid));
        let is_error = serde_json::from_str::<Value>(&result).is_ok_and(|v| v["is_error"] == true);
        self.out.line(&result);
        self.lifecycle(message_uuid, "completed");
        if ignore_interrupt {
            // Deaf to everything: only a signal ends it.
            self.wait_for_eof(true);
        }
        d.num("exit").map_or(i32::from(is_error), |c| c as i32)
    }

    /// Ends the turn early if an interrupt or a `priority: "now"` message
    /// came; returns the exit code then.
    fn stop_if_asked(&self, message_uuid: Option<&str>) -> Option<i32> {
        if self.directives.has("ignore_interrupt") {
            return None;
        }
        if self.interrupted() {
            return Some(self.abort(message_uuid));
        }
        if self.input.preempted.load(Ordering::SeqCst) {
            // Replaced by a newer message: a quiet, successful end.
            self.out.line(
                &json!({
                    "type": "result", "subtype": "success", "is_error": false, "num_turns": 1,
                    "duration_ms": self.started.elapsed().as_millis() as u64, "session_id": self.session_id,
                    "total_cost_usd": 0.0, "usage": {"input_tokens": 0, "output_tokens": 0},
                    "terminal_reason": "aborted_streaming", "result": "", "uuid": Uuid::new_v4(),
                    "user_message_uuids": message_uuid.into_iter().collect::<Vec<_>>(),
                })
                .to_string(),
            );
            self.lifecycle(message_uuid, "cancelled");
            return Some(0);
        }
        None
    }

    /// A `can_use_tool` permission prompt for `tool`, answered on stdin;
    /// Some(exit code) if the turn ended while waiting.
    fn ask_permission(&self, tool: &str, model: &str, message_uuid: Option<&str>) -> Option<i32> {
        let tool_use_id = format!("toolu_fake_{}", Uuid::new_v4().simple());
        let request_id = Uuid::new_v4().to_string();
        let input = match tool {
            // The shapes of the CLI's own interactive tools.
            "AskUserQuestion" => json!({ "questions": [
                {"question": "Which color should the button be?", "header": "Color", "multiSelect": false,
                 "options": [{"label": "Red", "description": "Warm"}, {"label": "Blue", "description": "Cool"}]},
                {"question": "Which sizes?", "header": "Sizes", "multiSelect": true,
                 "options": [{"label": "Small", "description": "S"}, {"label": "Large", "description": "L"}]}] }),
            "ExitPlanMode" => json!({ "plan": "1. Read the code\n2. Fix the bug" }),
            _ => json!({ "command": "touch created.txt", "description": "Create a file" }),
        };
        self.out.line(&json!({
            "type": "assistant",
            "message": {"id": format!("msg_fake_{}", Uuid::new_v4().simple()), "type": "message", "role": "assistant", "model": model,
                        "content": [{"type": "tool_use", "id": tool_use_id, "name": tool, "input": input}], "stop_reason": null},
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": Uuid::new_v4(),
        }).to_string());
        let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
        self.out.line(&json!({
            "type": "control_request", "request_id": request_id,
            "request": {"subtype": "can_use_tool", "tool_name": tool, "display_name": tool, "input": input,
                        "description": "Create a file", "tool_use_id": tool_use_id, "blocked_path": format!("{cwd}/created.txt"),
                        "permission_suggestions": [
                            {"type": "addRules", "rules": [{"toolName": tool, "ruleContent": input["command"]}], "behavior": "allow", "destination": "localSettings"},
                            {"type": "addDirectories", "directories": [cwd], "destination": "session"},
                            {"type": "setMode", "mode": "acceptEdits", "destination": "session"}]},
        }).to_string());
        let answer = loop {
            if self.interrupted() && !self.directives.has("ignore_interrupt") {
                self.out.line(&json!({"type": "control_cancel_request", "request_id": request_id}).to_string());
                return Some(self.abort(message_uuid));
            }
            let found = self.input.answers.lock().ok().and_then(|mut answers| {
                let at = answers.iter().position(|a| a["response"]["request_id"] == request_id.as_str())?;
                Some(answers.remove(at))
            });
            if let Some(answer) = found {
                break answer;
            }
            if self.input.eof.load(Ordering::SeqCst) {
                break json!({"response": {"subtype": "error", "error": "Tool permission stream closed before response received"}});
            }
            thread::sleep(Duration::from_millis(5));
        };
        let decision = &answer["response"]["response"];
        let (content, is_error) = if answer["response"]["subtype"] == "success" && decision["behavior"] == "allow" {
            match decision["updatedInput"].get("answers") {
                Some(answers) => (format!("User has answered your questions: {answers}"), false),
                None => {
                    let command = decision["updatedInput"]["command"].as_str().unwrap_or("touch created.txt");
                    (format!("ran: {command}"), false)
                }
            }
        } else if answer["response"]["subtype"] == "success" && decision["behavior"] == "deny" {
            (decision["message"].as_str().unwrap_or("denied").to_owned(), true)
        } else {
            (
                format!(
                    "Tool permission request failed: Error: {}",
                    answer["response"]["error"].as_str().unwrap_or("no answer")
                ),
                true,
            )
        };
        self.out.line(&json!({
            "type": "user", "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error}]},
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": Uuid::new_v4(),
        }).to_string());
        None
    }

    fn interrupted(&self) -> bool {
        self.input.interrupted.load(Ordering::SeqCst)
    }

    /// The CLI keeps running until stdin closes; so does this.
    fn wait_for_eof(&self, forever: bool) {
        while forever || !self.input.eof.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// A rejected `rate_limit_event` whose limit resets in `seconds`.
    fn rate_limit_event(&self, seconds: u64) -> String {
        let resets_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + seconds;
        json!({"type": "rate_limit_event", "rate_limit_info": {"status": "rejected", "resetsAt": resets_at, "rateLimitType": "five_hour"}, "uuid": Uuid::new_v4(), "session_id": self.session_id}).to_string()
    }

    fn hang(&self, message_uuid: Option<&str>) -> i32 {
        loop {
            if let Some(code) = self.stop_if_asked(message_uuid) {
                return code;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the CLI prints when a turn is interrupted mid-stream.
    fn abort(&self, message_uuid: Option<&str>) -> i32 {
        self.out.line(&json!({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "[Request interrupted by user]"}]}, "parent_tool_use_id": null, "session_id": self.session_id, "uuid": Uuid::new_v4(), "timestamp": now()}).to_string());
        self.out.line(&json!({
            "type": "result", "subtype": "error_during_execution", "is_error": true,
            "duration_ms": self.started.elapsed().as_millis() as u64, "duration_api_ms": 0, "num_turns": 1,
            "stop_reason": null, "session_id": self.session_id, "total_cost_usd": 0.0, "usage": {"input_tokens": 0, "output_tokens": 0},
            "permission_denials": [], "terminal_reason": "aborted_streaming",
            "errors": ["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"],
            "uuid": Uuid::new_v4(), "user_message_uuids": message_uuid.into_iter().collect::<Vec<_>>(),
        }).to_string());
        self.lifecycle(message_uuid, "cancelled");
        0
    }

    fn lifecycle(&self, message_uuid: Option<&str>, state: &str) {
        if let Some(uuid) = message_uuid {
            self.out.line(&json!({"type": "command_lifecycle", "command_uuid": uuid, "state": state, "uuid": Uuid::new_v4(), "session_id": self.session_id}).to_string());
        }
    }

    /// `edit=a.txt,b.txt`: each file gets a line appended (made if it is
    /// not there) through a Write call, whose result line is shaped as the
    /// CLI's (`tool_use_result` with `structuredPatch`); `rm=FILE` deletes
    /// a file as a shell command would, with no tool result saying so.
    fn file_edits(&self, model: &str) -> Vec<String> {
        const LINE: &str = "edited by fake claude";
        let cwd = std::env::current_dir().unwrap_or_default();
        if let Some(gone) = self.directives.0.get("rm") {
            let _ = std::fs::remove_file(cwd.join(gone));
        }
        let Some(files) = self.directives.0.get("edit") else { return Vec::new() };
        let mut lines = Vec::new();
        for name in files.split(',') {
            let path = cwd.join(name);
            let old = std::fs::read_to_string(&path).ok();
            let content = format!("{}{LINE}\n", old.clone().unwrap_or_default());
            if std::fs::write(&path, &content).is_err() {
                continue;
            }
            let file = path.display().to_string();
            let result = match &old {
                None => {
                    json!({"type": "create", "filePath": file, "content": content, "structuredPatch": [], "originalFile": null})
                }
                Some(old) => {
                    let n = old.lines().count();
                    let mut hunk: Vec<String> = old.lines().map(|l| format!(" {l}")).collect();
                    hunk.push(format!("+{LINE}"));
                    json!({"type": "update", "filePath": file, "content": content, "originalFile": old,
                        "structuredPatch": [{"oldStart": 1, "oldLines": n, "newStart": 1, "newLines": n + 1, "lines": hunk}]})
                }
            };
            let input = json!({"file_path": file, "content": content});
            lines.extend(self.tool_call(model, "Write", input, &format!("File written: {file}"), result));
        }
        lines
    }

    /// A tool call the CLI ran by itself: the assistant line that calls
    /// `name` with `input`, and the user line with its result (`text`, and
    /// `tool_use_result` as the CLI echoes it).
    fn tool_call(&self, model: &str, name: &str, input: Value, text: &str, tool_use_result: Value) -> [String; 2] {
        let id = format!("toolu_fake_{}", Uuid::new_v4().simple());
        let call = json!({"type": "tool_use", "id": id, "name": name, "input": input});
        [
            json!({
                "type": "assistant",
                "message": {"id": format!("msg_fake_{}", Uuid::new_v4().simple()), "type": "message", "role": "assistant", "model": model, "content": [call], "stop_reason": null, "usage": {"input_tokens": 10, "output_tokens": 5}},
                "parent_tool_use_id": null, "session_id": self.session_id, "uuid": Uuid::new_v4(), "timestamp": now(),
            })
            .to_string(),
            json!({
                "type": "user", "message": {"role": "user", "content": [{"tool_use_id": id, "type": "tool_result", "content": text}]},
                "parent_tool_use_id": null, "session_id": self.session_id, "uuid": Uuid::new_v4(), "timestamp": now(),
                "tool_use_result": tool_use_result,
            })
            .to_string(),
        ]
    }

    /// What the StructuredOutput tool is given: a value of the schema's
    /// shape (None without a schema, or with `no_structured`).
    fn structured_output(&self) -> Option<Value> {
        fn sample(schema: &Value) -> Value {
            if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
                return first.clone();
            }
            match schema["type"].as_str() {
                Some("string") => json!("fake"),
                Some("integer" | "number") => json!(0),
                Some("boolean") => json!(false),
                Some("array") => json!([]),
                Some("null") => Value::Null,
                _ => {
                    let properties = schema["properties"].as_object().cloned().unwrap_or_default();
                    properties.iter().map(|(k, v)| (k.clone(), sample(v))).collect::<serde_json::Map<_, _>>().into()
                }
            }
        }
        self.output_schema.as_ref().filter(|_| !self.directives.has("no_structured")).map(sample)
    }

    /// A made-up turn: init, the assistant's answer(s), and (later) a result.
    fn synthetic(&self, prompt: &str, model: &str, partial: bool) -> Vec<String> {
        let d = &self.directives;
        let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
        let mut lines = vec![json!({
            "type": "system", "subtype": "init", "cwd": cwd, "session_id": self.session_id,
            "tools": ["Bash", "Edit", "Read", "Write"], "mcp_servers": self.mcp_servers, "model": model,
            "permissionMode": "default", "apiKeySource": "none", "claude_code_version": "fake", "uuid": Uuid::new_v4(),
        })
        .to_string()];
        let message_id = format!("msg_fake_{}", Uuid::new_v4().simple());
        let mut texts: Vec<String> = Vec::new();
        if let Some(size) = d.num("huge") {
            texts.push("x".repeat(size as usize));
        } else if let Some(n) = d.num("messages") {
            let size = d.num("size").unwrap_or(100) as usize;
            texts.extend((1..=n).map(|i| format!("message {i} {}", "y".repeat(size.saturating_sub(12)))));
        } else if !prompt.trim_start().starts_with("fake:") {
            texts.push(format!("(fake claude) You said: {prompt}"));
        } else {
            texts.push("(fake claude) Done.".into());
        }
        lines.extend(self.file_edits(model));
        if let Some(output) = self.structured_output() {
            const DONE: &str = "Structured output provided successfully";
            lines.extend(self.tool_call(model, "StructuredOutput", output, DONE, json!(DONE)));
        }
        for text in texts {
            if partial {
                for event in [
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
                ] {
                    lines.push(json!({"type": "stream_event", "event": event, "session_id": self.session_id, "parent_tool_use_id": null, "uuid": Uuid::new_v4(), "api_message_id": message_id}).to_string());
                }
            }
            lines.push(json!({
                "type": "assistant",
                "message": {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": [{"type": "text", "text": text}], "stop_reason": null, "usage": {"input_tokens": 10, "output_tokens": 5}},
                "parent_tool_use_id": null, "session_id": self.session_id, "uuid": Uuid::new_v4(), "timestamp": now(),
                // Stamped when written (see EMIT_PLACEHOLDER).
                "emit_ns": 0,
            })
            .to_string());
        }
        lines
    }

    fn result(&self, d: &Directives, message_uuid: Option<&str>) -> String {
        let over_budget = self.max_budget_usd.filter(|budget| *budget < TURN_COST_USD);
        let (subtype, is_error, terminal, text, errors) = if let Some(budget) = over_budget {
            (
                "error_max_budget_usd",
                true,
                "budget_exhausted",
                None,
                vec![format!("Reached maximum budget (${budget})")],
            )
        } else if d.has("max_turns") {
            ("error_max_turns", true, "max_turns", None, vec!["Reached maximum number of turns (1)".to_owned()])
        } else if d.has("error_result") {
            ("success", true, "api_error", Some("API Error: 500 Internal server error".to_owned()), vec![])
        } else {
            ("success", false, "completed", Some("(fake claude) Done.".to_owned()), vec![])
        };
        let mut result = json!({
            "type": "result", "subtype": subtype, "is_error": is_error,
            "duration_ms": self.started.elapsed().as_millis() as u64, "duration_api_ms": 1, "num_turns": 1,
            "session_id": self.session_id, "total_cost_usd": TURN_COST_USD,
            "usage": {"input_tokens": 10, "output_tokens": 5}, "permission_denials": [],
            "terminal_reason": terminal, "stop_reason": "end_turn", "uuid": Uuid::new_v4(),
            "user_message_uuids": message_uuid.into_iter().collect::<Vec<_>>(),
        });
        if let Some(text) = text {
            result["result"] = json!(text);
        }
        if let Some(output) = self.structured_output().filter(|_| !is_error) {
            result["result"] = json!(output.to_string());
            result["structured_output"] = output;
        }
        if !errors.is_empty() {
            result["errors"] = json!(errors);
        }
        if is_error && !d.has("max_turns") && over_budget.is_none() {
            result["api_error_status"] = json!(500);
        }
        result.to_string()
    }
}

/// A recording's lines, with its session id replaced by ours.
fn recording(name: &str, session_id: &str) -> Option<Vec<String>> {
    let text = FIXTURES.iter().find(|(n, _)| *n == name)?.1;
    let recorded = text
        .lines()
        .find_map(|l| serde_json::from_str::<Value>(l).ok()?.get("session_id")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    // One turn: up to the first result (some recordings hold a second turn).
    let mut lines = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        lines.push(if recorded.is_empty() { line.to_owned() } else { line.replace(&recorded, session_id) });
        if serde_json::from_str::<Value>(line).is_ok_and(|v| v["type"] == "result") {
            break;
        }
    }
    Some(lines)
}

/// What one synthetic turn costs.
const TURN_COST_USD: f64 = 0.0123;

/// Assistant lines carry the time they were written, for latency figures.
const EMIT_PLACEHOLDER: &str = "\"emit_ns\":0";

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
