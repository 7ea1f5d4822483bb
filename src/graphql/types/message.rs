//! Claude's stream-json lines as GraphQL types (`ClaudeMessage`), so that
//! clients can generate code for what they render.
//!
//! The model follows the CLI's recordings (FORMAT.md, CONTROL.md). Lines
//! are stored verbatim and typed only when a client asks: every message
//! keeps its line as `raw`, and a line of a type this version does not know,
//! or of a known type with an unexpected shape, still arrives (as an
//! `UnknownMessage`, or with the fields it lacks null), never as an error.

use std::sync::Arc;

use async_graphql::{Interface, SimpleObject};
use serde_json::Value;

use super::{Json, RawJson};
use crate::claude::stream::{INVALID_JSON, STDERR};

/// A line `claude` wrote, typed by its `type` (and `subtype`).
// Several interface fields share a type, which clippy takes for repeats.
#[allow(clippy::duplicated_attributes)]
#[derive(Interface)]
#[graphql(
    field(
        name = "type",
        ty = "&String",
        method = "type_name",
        desc = "The line's `type` (`stderr` for a line of the child's stderr, `invalid_json` for a stdout line that is not JSON)."
    ),
    field(name = "subtype", ty = "&Option<String>"),
    field(name = "uuid", ty = "&Option<String>", desc = "The line's own `uuid`, when it has one."),
    field(name = "session_id", ty = "&Option<String>", desc = "Claude's session id, as the line gives it."),
    field(
        name = "parent_tool_use_id",
        ty = "&Option<String>",
        desc = "For a subagent's lines, the id of the `Task` tool use that started it."
    ),
    field(name = "raw", ty = "&RawJson", desc = "The line exactly as `claude` wrote it.")
)]
pub enum ClaudeMessage {
    SystemInit(SystemInitMessage),
    ApiRetry(ApiRetryMessage),
    System(SystemMessage),
    Assistant(AssistantMessage),
    User(UserMessage),
    Result(ResultMessage),
    Partial(PartialMessage),
    Control(ControlMessage),
    CommandLifecycle(CommandLifecycleMessage),
    Stderr(StderrMessage),
    Unknown(UnknownMessage),
}

/// One block of an assistant or user message.
#[derive(Interface)]
#[graphql(
    field(
        name = "type",
        ty = "&String",
        method = "type_name",
        desc = "The block's `type`: text, thinking, tool_use, tool_result, image, ..."
    ),
    field(name = "raw", ty = "&Json", desc = "The block as `claude` wrote it.")
)]
pub enum ContentBlock {
    Text(TextBlock),
    Thinking(ThinkingBlock),
    ToolUse(ToolUseBlock),
    ToolResult(ToolResultBlock),
    Image(ImageBlock),
    Unknown(UnknownBlock),
}

/// Declares a message type: the fields every `ClaudeMessage` has, then its
/// own. (async-graphql has no inheritance; this keeps the ten in step.)
macro_rules! message_type {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(SimpleObject)]
        pub struct $name {
            /// The line's `type`.
            #[graphql(name = "type")]
            pub type_name: String,
            pub subtype: Option<String>,
            /// The line's own `uuid`, when it has one.
            pub uuid: Option<String>,
            /// Claude's session id, as the line gives it.
            pub session_id: Option<String>,
            /// For a subagent's lines, the id of the `Task` tool use that
            /// started it.
            pub parent_tool_use_id: Option<String>,
            /// The line exactly as `claude` wrote it.
            pub raw: RawJson,
            $($(#[$fdoc])* pub $field: $ty,)*
        }
    };
}

message_type!(
    /// `system`/`init`: the first line of every turn, with what the run
    /// works with.
    SystemInitMessage {
        model: Option<String>,
        /// The directory Claude runs in.
        cwd: Option<String>,
        /// The tools Claude may use.
        tools: Vec<String>,
        /// default, acceptEdits, plan, bypassPermissions, ...
        permission_mode: Option<String>,
        claude_code_version: Option<String>,
        mcp_servers: Vec<McpServerStatus>,
        slash_commands: Vec<String>,
    }
);

message_type!(
    /// `system`/`api_retry`: an API call failed and is tried again.
    ApiRetryMessage {
        attempt: Option<i64>,
        max_retries: Option<i64>,
        retry_delay_ms: Option<i64>,
        /// The HTTP status of the failed call.
        error_status: Option<i64>,
        error: Option<String>,
    }
);

message_type!(
    /// Another `system` line (`status`, `permission_denied`, `task_*`, ...):
    /// read `subtype` and `raw`.
    SystemMessage {}
);

message_type!(
    /// One block of a reply from the model (a reply of several blocks comes
    /// as several lines sharing `messageId`).
    AssistantMessage {
        /// The API's message id (`msg_...`).
        message_id: Option<String>,
        model: Option<String>,
        content: Vec<ContentBlock>,
        stop_reason: Option<String>,
        usage: Option<TokenUsage>,
        /// A message the CLI made up for a failed API call ("API Error: ...").
        is_api_error: bool,
        /// With `isApiError`: server_error, authentication_failed, ...
        error: Option<String>,
        api_error_status: Option<i64>,
    }
);

message_type!(
    /// A user turn: tool results, an interruption note, or (replayed) a
    /// prompt.
    UserMessage {
        content: Vec<ContentBlock>,
        /// An echo of a message sent to Claude.
        is_replay: bool,
        /// The tool's structured result (`tool_use_result`), as the CLI
        /// gives it.
        tool_use_result: Option<Json>,
    }
);

message_type!(
    /// `result`: the end of a turn, with its outcome and what it cost.
    ResultMessage {
        is_error: bool,
        /// The final answer of a successful turn.
        result: Option<String>,
        num_turns: Option<i64>,
        duration_ms: Option<i64>,
        duration_api_ms: Option<i64>,
        total_cost_usd: Option<f64>,
        usage: Option<TokenUsage>,
        stop_reason: Option<String>,
        /// completed, max_turns, api_error, prompt_too_long,
        /// budget_exhausted, aborted_streaming, aborted_tools, ...
        terminal_reason: Option<String>,
        errors: Vec<String>,
        permission_denials: Vec<PermissionDenial>,
    }
);

message_type!(
    /// `stream_event`: a partial-token event (`includePartialMessages`;
    /// live only, no `seq`).
    PartialMessage {
        /// message_start, content_block_start, content_block_delta,
        /// content_block_stop, message_delta, message_stop.
        event_type: Option<String>,
        /// The content block it belongs to.
        index: Option<i64>,
        /// text_delta, thinking_delta, input_json_delta, ...
        delta_type: Option<String>,
        /// The text (or thinking) a delta adds.
        delta: Option<String>,
        /// The piece of tool input JSON an `input_json_delta` adds.
        partial_json: Option<String>,
        /// The block a `content_block_start` opens.
        content_block: Option<ContentBlock>,
        /// Links the deltas to `AssistantMessage.messageId`.
        api_message_id: Option<String>,
    }
);

message_type!(
    /// `control_request`, `control_response` or `control_cancel_request`:
    /// the CLI's side of a control exchange (permission prompts are also
    /// `PermissionRequest`s).
    ControlMessage {
        request_id: Option<String>,
        /// can_use_tool, interrupt, success, error, ...
        request_subtype: Option<String>,
    }
);

message_type!(
    /// `command_lifecycle`: what became of a message sent with
    /// `sendMessage` (or of the prompt).
    CommandLifecycleMessage {
        /// The `messageId` sendMessage returned.
        command_uuid: Option<String>,
        /// queued, started, completed, cancelled, ...
        state: Option<String>,
    }
);

message_type!(
    /// A line of the child's stderr.
    StderrMessage { text: String }
);

message_type!(
    /// A line of a type this server does not model (a newer CLI), or a
    /// stdout line that is not JSON.
    UnknownMessage {
        /// The line as text.
        text: String,
    }
);

/// Token counts.
#[derive(SimpleObject)]
pub struct TokenUsage {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
}

/// An MCP server of the run, and whether it connected.
#[derive(SimpleObject)]
pub struct McpServerStatus {
    pub name: String,
    /// connected, failed, ...
    pub status: String,
}

/// A tool call that was refused.
#[derive(SimpleObject)]
pub struct PermissionDenial {
    pub tool_name: String,
    pub tool_use_id: Option<String>,
    pub tool_input: Option<Json>,
}

/// Declares a content block type: `type` and `raw`, then its own fields.
macro_rules! block_type {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(SimpleObject)]
        pub struct $name {
            /// The block's `type`.
            #[graphql(name = "type")]
            pub type_name: String,
            /// The block as `claude` wrote it.
            pub raw: Json,
            $($(#[$fdoc])* pub $field: $ty,)*
        }
    };
}

block_type!(
    /// Text.
    TextBlock { text: String }
);
block_type!(
    /// The model's reasoning.
    ThinkingBlock { thinking: String }
);
block_type!(
    /// A call of a tool.
    ToolUseBlock {
        /// Pairs with `ToolResultBlock.toolUseId` and
        /// `PermissionRequest.toolUseId`.
        id: String,
        name: String,
        input: Json,
    }
);
block_type!(
    /// What a tool returned.
    ToolResultBlock {
        tool_use_id: String,
        is_error: bool,
        /// The result's text (its text blocks joined).
        text: String,
        /// The result's blocks, when it has more than text.
        content: Vec<ContentBlock>,
    }
);
block_type!(
    /// An image.
    ImageBlock {
        media_type: Option<String>,
        /// base64, url, ...
        source_type: Option<String>,
    }
);
block_type!(
    /// A block of another type (read `raw`).
    UnknownBlock {}
);

/// Types one stored or live line. `type_name` is the type it was stored
/// under; `raw` is the line (JSON text).
pub fn claude_message(type_name: &str, raw: &Arc<str>) -> ClaudeMessage {
    let value: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let header = Header::new(type_name, &value, raw);
    let subtype = value["subtype"].as_str();
    match (type_name, subtype) {
        (STDERR, _) => ClaudeMessage::Stderr(header.stderr(text(&value))),
        (INVALID_JSON, _) => ClaudeMessage::Unknown(header.unknown(text(&value))),
        ("system", Some("init")) => ClaudeMessage::SystemInit(header.system_init(&value)),
        ("system", Some("api_retry")) => ClaudeMessage::ApiRetry(header.api_retry(&value)),
        ("system", _) => ClaudeMessage::System(header.system()),
        ("assistant", _) => ClaudeMessage::Assistant(header.assistant(&value)),
        ("user", _) => ClaudeMessage::User(header.user(&value)),
        ("result", _) => ClaudeMessage::Result(header.result(&value)),
        ("stream_event", _) => ClaudeMessage::Partial(header.partial(&value)),
        ("control_request" | "control_response" | "control_cancel_request", _) => {
            ClaudeMessage::Control(header.control(&value))
        }
        ("command_lifecycle", _) => ClaudeMessage::CommandLifecycle(header.command_lifecycle(&value)),
        _ => ClaudeMessage::Unknown(header.unknown(raw.to_string())),
    }
}

/// The fields every message has.
struct Header {
    type_name: String,
    subtype: Option<String>,
    uuid: Option<String>,
    session_id: Option<String>,
    parent_tool_use_id: Option<String>,
    raw: RawJson,
}

/// Builds a message type from the header and its own fields.
macro_rules! build {
    ($header:expr, $name:ident { $($field:ident : $value:expr),* $(,)? }) => {{
        let Header { type_name, subtype, uuid, session_id, parent_tool_use_id, raw } = $header;
        $name { type_name, subtype, uuid, session_id, parent_tool_use_id, raw, $($field: $value),* }
    }};
}

impl Header {
    fn new(type_name: &str, value: &Value, raw: &Arc<str>) -> Header {
        Header {
            type_name: type_name.to_owned(),
            subtype: string(&value["subtype"]),
            uuid: string(&value["uuid"]),
            session_id: string(&value["session_id"]),
            parent_tool_use_id: string(&value["parent_tool_use_id"]),
            raw: RawJson(raw.clone()),
        }
    }

    fn system_init(self, v: &Value) -> SystemInitMessage {
        build!(
            self,
            SystemInitMessage {
                model: string(&v["model"]),
                cwd: string(&v["cwd"]),
                tools: strings(&v["tools"]),
                permission_mode: string(&v["permissionMode"]),
                claude_code_version: string(&v["claude_code_version"]),
                mcp_servers: items(&v["mcp_servers"])
                    .map(|s| McpServerStatus {
                        name: string(&s["name"]).unwrap_or_default(),
                        status: string(&s["status"]).unwrap_or_default(),
                    })
                    .collect(),
                slash_commands: strings(&v["slash_commands"]),
            }
        )
    }

    fn api_retry(self, v: &Value) -> ApiRetryMessage {
        build!(
            self,
            ApiRetryMessage {
                attempt: v["attempt"].as_i64(),
                max_retries: v["max_retries"].as_i64(),
                retry_delay_ms: v["retry_delay_ms"].as_i64(),
                error_status: v["error_status"].as_i64(),
                error: string(&v["error"]),
            }
        )
    }

    fn system(self) -> SystemMessage {
        build!(self, SystemMessage {})
    }

    fn assistant(self, v: &Value) -> AssistantMessage {
        let message = &v["message"];
        build!(
            self,
            AssistantMessage {
                message_id: string(&message["id"]),
                model: string(&message["model"]),
                content: blocks(&message["content"]),
                stop_reason: string(&message["stop_reason"]),
                usage: usage(&message["usage"]),
                is_api_error: v["is_api_error_message"].as_bool().unwrap_or(false),
                error: string(&v["error"]),
                api_error_status: v["api_error_status"].as_i64(),
            }
        )
    }

    fn user(self, v: &Value) -> UserMessage {
        let tool_use_result = v.get("tool_use_result").filter(|r| !r.is_null()).cloned().map(Json);
        build!(
            self,
            UserMessage {
                content: blocks(&v["message"]["content"]),
                is_replay: v["isReplay"].as_bool().unwrap_or(false),
                tool_use_result: tool_use_result,
            }
        )
    }

    fn result(self, v: &Value) -> ResultMessage {
        build!(
            self,
            ResultMessage {
                is_error: v["is_error"].as_bool().unwrap_or(false),
                result: string(&v["result"]),
                num_turns: v["num_turns"].as_i64(),
                duration_ms: v["duration_ms"].as_i64(),
                duration_api_ms: v["duration_api_ms"].as_i64(),
                total_cost_usd: v["total_cost_usd"].as_f64(),
                usage: usage(&v["usage"]),
                stop_reason: string(&v["stop_reason"]),
                terminal_reason: string(&v["terminal_reason"]),
                errors: strings(&v["errors"]),
                permission_denials: items(&v["permission_denials"])
                    .map(|d| PermissionDenial {
                        tool_name: string(&d["tool_name"]).unwrap_or_default(),
                        tool_use_id: string(&d["tool_use_id"]),
                        tool_input: d.get("tool_input").cloned().map(Json),
                    })
                    .collect(),
            }
        )
    }

    fn partial(self, v: &Value) -> PartialMessage {
        let event = &v["event"];
        let delta = &event["delta"];
        let text = string(&delta["text"]).or_else(|| string(&delta["thinking"]));
        let content_block = event.get("content_block").filter(|b| b.is_object()).map(block);
        build!(
            self,
            PartialMessage {
                event_type: string(&event["type"]),
                index: event["index"].as_i64(),
                delta_type: string(&delta["type"]),
                delta: text,
                partial_json: string(&delta["partial_json"]),
                content_block: content_block,
                api_message_id: string(&v["api_message_id"]),
            }
        )
    }

    fn control(self, v: &Value) -> ControlMessage {
        let body = if v["request"].is_object() { &v["request"] } else { &v["response"] };
        let request_id = string(&v["request_id"]).or_else(|| string(&body["request_id"]));
        build!(self, ControlMessage { request_id: request_id, request_subtype: string(&body["subtype"]) })
    }

    fn command_lifecycle(self, v: &Value) -> CommandLifecycleMessage {
        build!(self, CommandLifecycleMessage { command_uuid: string(&v["command_uuid"]), state: string(&v["state"]) })
    }

    fn stderr(self, text: String) -> StderrMessage {
        build!(self, StderrMessage { text: text })
    }

    fn unknown(self, text: String) -> UnknownMessage {
        build!(self, UnknownMessage { text: text })
    }
}

/// A message's `content`: a plain string is one text block.
fn blocks(content: &Value) -> Vec<ContentBlock> {
    match content {
        Value::String(text) => vec![ContentBlock::Text(TextBlock {
            type_name: "text".into(),
            raw: Json(serde_json::json!({ "type": "text", "text": text })),
            text: text.clone(),
        })],
        _ => items(content).map(block).collect(),
    }
}

fn block(v: &Value) -> ContentBlock {
    let type_name = string(&v["type"]).unwrap_or_default();
    let raw = Json(v.clone());
    match type_name.as_str() {
        "text" => ContentBlock::Text(TextBlock { text: string(&v["text"]).unwrap_or_default(), type_name, raw }),
        "thinking" => ContentBlock::Thinking(ThinkingBlock {
            thinking: string(&v["thinking"]).unwrap_or_default(),
            type_name,
            raw,
        }),
        "tool_use" | "server_tool_use" => ContentBlock::ToolUse(ToolUseBlock {
            id: string(&v["id"]).unwrap_or_default(),
            name: string(&v["name"]).unwrap_or_default(),
            input: Json(v["input"].clone()),
            type_name,
            raw,
        }),
        "tool_result" => {
            let content = &v["content"];
            let text = match content {
                Value::String(text) => text.clone(),
                _ => items(content).filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n"),
            };
            ContentBlock::ToolResult(ToolResultBlock {
                tool_use_id: string(&v["tool_use_id"]).unwrap_or_default(),
                is_error: v["is_error"].as_bool().unwrap_or(false),
                text,
                content: if content.is_array() { blocks(content) } else { Vec::new() },
                type_name,
                raw,
            })
        }
        "image" => ContentBlock::Image(ImageBlock {
            media_type: string(&v["source"]["media_type"]),
            source_type: string(&v["source"]["type"]),
            type_name,
            raw,
        }),
        _ => ContentBlock::Unknown(UnknownBlock { type_name, raw }),
    }
}

fn usage(v: &Value) -> Option<TokenUsage> {
    v.is_object().then(|| TokenUsage {
        input_tokens: v["input_tokens"].as_i64().unwrap_or(0),
        output_tokens: v["output_tokens"].as_i64().unwrap_or(0),
        cache_creation_input_tokens: v["cache_creation_input_tokens"].as_i64().unwrap_or(0),
        cache_read_input_tokens: v["cache_read_input_tokens"].as_i64().unwrap_or(0),
    })
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn strings(v: &Value) -> Vec<String> {
    items(v).filter_map(string).collect()
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// The text of a line kept as a JSON string (stderr, not-JSON stdout).
fn text(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of every recording is typed as its `type` says, with the
    /// fields the recordings have, and nothing in them is an error.
    #[test]
    fn the_recordings_are_typed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let mut seen = std::collections::BTreeSet::new();
        for path in recordings(std::path::Path::new(dir)) {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let parsed = crate::claude::stream::Line::parse(line.as_bytes());
                let raw: Arc<str> = parsed.payload.clone();
                let message = claude_message(&parsed.type_name, &raw);
                let kind = match &message {
                    ClaudeMessage::SystemInit(m) => {
                        assert!(m.model.is_some() && !m.tools.is_empty(), "{line}");
                        "init"
                    }
                    ClaudeMessage::Assistant(m) => {
                        assert!(!m.content.is_empty() && m.message_id.is_some(), "{line}");
                        "assistant"
                    }
                    ClaudeMessage::User(m) => {
                        assert!(!m.content.is_empty(), "{line}");
                        "user"
                    }
                    ClaudeMessage::Result(m) => {
                        assert!(m.num_turns.is_some() && m.total_cost_usd.is_some(), "{line}");
                        "result"
                    }
                    ClaudeMessage::Partial(m) => {
                        assert!(m.event_type.is_some(), "{line}");
                        "partial"
                    }
                    ClaudeMessage::ApiRetry(m) => {
                        assert!(m.attempt.is_some(), "{line}");
                        "api_retry"
                    }
                    ClaudeMessage::System(_) => "system",
                    ClaudeMessage::Control(m) => {
                        // Some responses of the CLI carry no request id.
                        assert!(m.request_subtype.is_some() || m.type_name == "control_cancel_request", "{line}");
                        "control"
                    }
                    ClaudeMessage::CommandLifecycle(m) => {
                        assert!(m.command_uuid.is_some() && m.state.is_some(), "{line}");
                        "command_lifecycle"
                    }
                    ClaudeMessage::Stderr(_) => "stderr",
                    ClaudeMessage::Unknown(_) => panic!("a recorded line is unknown: {line}"),
                };
                seen.insert(kind);
            }
        }
        let kinds =
            ["init", "assistant", "user", "result", "partial", "api_retry", "system", "control", "command_lifecycle"];
        for kind in kinds {
            assert!(seen.contains(kind), "no recording has a {kind} line");
        }
    }

    #[test]
    fn blocks_are_typed() {
        let raw: Arc<str> = Arc::from(
            r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"type":"future_block"}]}}"#,
        );
        let ClaudeMessage::User(user) = claude_message("user", &raw) else { panic!("not a user message") };
        let ContentBlock::ToolResult(result) = &user.content[0] else { panic!("not a tool result") };
        assert_eq!((result.text.as_str(), result.is_error, result.content.len()), ("a\nb", true, 2));
        assert!(matches!(&user.content[1], ContentBlock::Unknown(b) if b.type_name == "future_block"));
        // Not JSON, a newer type, and a known type with the wrong shape.
        let garbage: Arc<str> = Arc::from(r#""not json at all""#);
        assert!(
            matches!(claude_message(INVALID_JSON, &garbage), ClaudeMessage::Unknown(m) if m.text == "not json at all")
        );
        let newer: Arc<str> = Arc::from(r#"{"type":"hologram","uuid":"u"}"#);
        assert!(
            matches!(claude_message("hologram", &newer), ClaudeMessage::Unknown(m) if m.uuid.as_deref() == Some("u"))
        );
        let odd: Arc<str> = Arc::from(r#"{"type":"assistant","message":"?"}"#);
        assert!(matches!(claude_message("assistant", &odd), ClaudeMessage::Assistant(m) if m.content.is_empty()));
    }

    fn recordings(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(recordings(&path));
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                found.push(path);
            }
        }
        found
    }
}
