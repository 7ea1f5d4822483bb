//! How `claude` is started: the argv, the environment and the stdin lines.

use std::{ffi::OsString, os::fd::AsRawFd, path::PathBuf, process::Stdio};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::process::Command;
use uuid::Uuid;

use super::sandbox;

/// What a client asked for when it started the execution; stored with the
/// execution as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<f64>,
    /// Ask the server (and so a client) before using a tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_approval: Option<bool>,
    /// A JSON Schema the run's final answer must match (`--json-schema`);
    /// the answer is the result's `structured_output`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    /// MCP servers besides the workspace's (replacing those of the same
    /// name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<Vec<super::mcp::McpServer>>,
    #[serde(default)]
    pub include_partial_messages: bool,
}

impl RunOptions {
    /// These options, with `defaults` (an agent profile's) where these
    /// say nothing.
    pub fn or(self, defaults: RunOptions) -> RunOptions {
        RunOptions {
            system_prompt: self.system_prompt.or(defaults.system_prompt),
            append_system_prompt: self.append_system_prompt.or(defaults.append_system_prompt),
            max_turns: self.max_turns.or(defaults.max_turns),
            allowed_tools: self.allowed_tools.or(defaults.allowed_tools),
            model: self.model.or(defaults.model),
            permission_mode: self.permission_mode.or(defaults.permission_mode),
            max_budget_usd: self.max_budget_usd.or(defaults.max_budget_usd),
            require_approval: self.require_approval.or(defaults.require_approval),
            output_schema: self.output_schema.or(defaults.output_schema),
            mcp_servers: self.mcp_servers.or(defaults.mcp_servers),
            include_partial_messages: self.include_partial_messages,
        }
    }
}

/// A started `claude`, and what lives as long as it runs.
pub struct Spawned {
    pub child: tokio::process::Child,
    pub cgroup: Option<sandbox::RunCgroup>,
    /// The `--mcp-config` file; deleted when dropped.
    pub mcp_config: Option<tempfile::NamedTempFile>,
}

/// One `claude` invocation, ready to spawn.
#[derive(Debug, Clone)]
pub struct ClaudeCommand {
    /// The execution this runs (names its cgroup).
    pub run_id: Uuid,
    pub bin: PathBuf,
    pub cwd: PathBuf,
    pub resume: Option<String>,
    /// With `resume`: continue a copy of that session under a new id
    /// (`--fork-session`), leaving the original as it is.
    pub fork: bool,
    pub options: RunOptions,
}

impl ClaudeCommand {
    /// The arguments after the program name, exactly as SPEC lists them.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> =
            ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
                .map(OsString::from)
                .to_vec();
        let mut flag = |name: &str, value: String| {
            args.push(name.into());
            args.push(value.into());
        };
        let o = &self.options;
        if let Some(id) = &self.resume {
            flag("--resume", id.clone());
        }
        if let Some(n) = o.max_turns {
            flag("--max-turns", n.to_string());
        }
        if let Some(s) = &o.system_prompt {
            flag("--system-prompt", s.clone());
        }
        if let Some(s) = &o.append_system_prompt {
            flag("--append-system-prompt", s.clone());
        }
        if let Some(tools) = &o.allowed_tools {
            flag("--allowedTools", tools.join(","));
        }
        if let Some(m) = &o.model {
            flag("--model", m.clone());
        }
        if let Some(m) = &o.permission_mode {
            flag("--permission-mode", m.clone());
        }
        if let Some(usd) = o.max_budget_usd {
            flag("--max-budget-usd", usd.to_string());
        }
        if let Some(schema) = &o.output_schema {
            flag("--json-schema", schema.to_string());
        }
        if o.require_approval == Some(true) {
            flag("--permission-prompt-tool", "stdio".into());
        }
        if o.include_partial_messages {
            args.push("--include-partial-messages".into());
        }
        if self.fork && self.resume.is_some() {
            args.push("--fork-session".into());
        }
        args
    }

    /// Starts `claude` in the workspace directory, confined as
    /// [`sandbox::confine_child`] says. The directory is opened first, one
    /// component at a time without following symbolic links, and the child
    /// changes into that open directory: a directory swapped for a link
    /// after registration (or while this runs) is refused, not followed.
    ///
    /// MCP servers go to the CLI in a file only the server's user can read
    /// (their headers and environment carry tokens, which an argv would
    /// show to every user of the machine); the file lasts as long as the
    /// returned [`Spawned`].
    pub fn spawn(&self) -> std::io::Result<Spawned> {
        let dir = sandbox::open_dir_nofollow(&self.cwd)?;
        let mut cmd = self.to_command();
        let mcp_config = match self.options.mcp_servers.as_deref() {
            Some(servers) if !servers.is_empty() => {
                let mut file = tempfile::Builder::new().prefix("claude-mcp-").suffix(".json").tempfile()?;
                std::io::Write::write_all(&mut file, super::mcp::config_json(servers).to_string().as_bytes())?;
                cmd.arg("--mcp-config").arg(file.path()).arg("--strict-mcp-config");
                Some(file)
            }
            _ => None,
        };
        let cgroup = sandbox::RunCgroup::create(&self.run_id.to_string());
        sandbox::confine_child(&mut cmd, dir.as_raw_fd(), cgroup.as_ref().map(sandbox::RunCgroup::procs_fd));
        // `dir` stays open until the child has changed into it.
        match cmd.spawn() {
            Ok(child) => Ok(Spawned { child, cgroup, mcp_config }),
            Err(e) => {
                if let Some(cgroup) = cgroup {
                    cgroup.discard();
                }
                Err(e)
            }
        }
    }

    /// A tokio `Command` with piped stdio, no shell, the server's secrets
    /// removed, and its own process group so that a stop signal reaches
    /// the tools Claude started too. (No working directory: see `spawn`.)
    pub fn to_command(&self) -> Command {
        let mut cmd = sandbox::child_command(&self.bin);
        cmd.args(self.args()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }
}

/// The program `bin` names, as an absolute path: a path with a `/` is
/// taken relative to the server's working directory (not the workspace's,
/// where it is spawned), a bare name is looked up in `PATH`. None when
/// there is no executable file there.
pub fn resolve_bin(bin: &std::path::Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &std::path::Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if bin.components().count() > 1 || bin.is_absolute() {
        let absolute = std::env::current_dir().ok()?.join(bin);
        return executable(&absolute).then(|| absolute.canonicalize().unwrap_or(absolute));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(bin))
        .find(|candidate| executable(candidate))
}

/// What one user message to `claude` says: text, or content blocks as the
/// Messages API takes them (text, image, document).
#[derive(Debug, Clone, PartialEq)]
pub enum UserContent {
    Text(String),
    Blocks(Vec<serde_json::Value>),
}

/// The stream-json user message that carries a prompt, with our own uuid;
/// `now` replaces the running turn instead of queueing after it.
pub fn user_message(content: &UserContent, uuid: Uuid, now: bool) -> String {
    let content = match content {
        UserContent::Text(text) => json!(text),
        UserContent::Blocks(blocks) => json!(blocks),
    };
    let mut message = json!({
        "type": "user",
        "message": { "role": "user", "content": content },
        "uuid": uuid.to_string(),
        "session_id": "",
        "parent_tool_use_id": null,
    });
    if now {
        message["priority"] = json!("now");
    }
    message.to_string()
}

/// Our answer to a permission prompt (`can_use_tool`), as the CLI reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum PermissionDecision {
    /// The tool runs with `input` (the prompt's own, or changed), and the
    /// CLI applies `permissions` (the prompt's suggestions chosen) first.
    Allow { input: serde_json::Value, permissions: Vec<serde_json::Value> },
    /// The tool does not run; the model is told `message`.
    Deny { message: String },
}

impl PermissionDecision {
    pub fn deny(message: impl Into<String>) -> PermissionDecision {
        PermissionDecision::Deny { message: message.into() }
    }

    /// The `response` object of the `control_response`, which is also what
    /// is stored as the request's decision.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            PermissionDecision::Allow { input, permissions } if permissions.is_empty() => {
                json!({ "behavior": "allow", "updatedInput": input })
            }
            PermissionDecision::Allow { input, permissions } => {
                json!({ "behavior": "allow", "updatedInput": input, "updatedPermissions": permissions })
            }
            PermissionDecision::Deny { message } => json!({ "behavior": "deny", "message": message }),
        }
    }
}

/// Our answer to one of claude's control requests (a permission prompt).
pub fn control_response(request_id: &str, response: &serde_json::Value) -> String {
    json!({
        "type": "control_response",
        "response": { "subtype": "success", "request_id": request_id, "response": response },
    })
    .to_string()
}

/// The control request that ends the running turn cleanly.
pub fn interrupt_request(request_id: &str) -> String {
    json!({
        "type": "control_request",
        "request_id": request_id,
        "request": { "subtype": "interrupt" },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_decisions_as_the_cli_reads_them() {
        let input = json!({ "command": "ls" });
        let allow = PermissionDecision::Allow { input: input.clone(), permissions: vec![] };
        assert_eq!(allow.to_json(), json!({ "behavior": "allow", "updatedInput": { "command": "ls" } }));
        let rule = json!({ "type": "setMode", "mode": "acceptEdits", "destination": "session" });
        let with_rule = PermissionDecision::Allow { input, permissions: vec![rule.clone()] };
        assert_eq!(with_rule.to_json()["updatedPermissions"], json!([rule]));
        assert_eq!(PermissionDecision::deny("no").to_json(), json!({ "behavior": "deny", "message": "no" }));
        let line: serde_json::Value = serde_json::from_str(&control_response("r1", &allow.to_json())).unwrap();
        assert_eq!(line["response"]["request_id"], "r1");
        assert_eq!(line["response"]["response"]["behavior"], "allow");
    }

    #[test]
    fn argv_follows_the_spec_order() {
        let cmd = ClaudeCommand {
            run_id: Uuid::nil(),
            bin: "claude".into(),
            cwd: "/tmp".into(),
            resume: Some("abc".into()),
            fork: false,
            options: RunOptions {
                max_turns: Some(3),
                allowed_tools: Some(vec!["Bash".into(), "Read".into()]),
                include_partial_messages: true,
                ..Default::default()
            },
        };
        let args: Vec<String> = cmd.args().into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            args.join(" "),
            "-p --input-format stream-json --output-format stream-json --verbose \
             --resume abc --max-turns 3 --allowedTools Bash,Read --include-partial-messages"
        );
    }

    #[test]
    fn the_child_never_gets_the_servers_secrets() {
        let cmd = ClaudeCommand {
            run_id: Uuid::nil(),
            bin: "claude".into(),
            cwd: "/tmp".into(),
            resume: None,
            fork: false,
            options: RunOptions::default(),
        };
        let command = cmd.to_command();
        let removed: Vec<_> =
            command.as_std().get_envs().filter(|(_, v)| v.is_none()).map(|(k, _)| k.to_owned()).collect();
        assert_eq!(removed, ["DATABASE_URL", "DATABASE_URL_FILE", "JWT_SECRET", "JWT_SECRET_FILE"]);
    }

    #[test]
    fn user_message_is_one_json_line() {
        let line = user_message(&UserContent::Text("hi\nthere".into()), Uuid::nil(), false);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"]["content"], "hi\nthere");
        assert_eq!(v["message"]["role"], "user");
    }
}
