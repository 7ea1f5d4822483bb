//! What one stdout line of `claude --output-format stream-json` is.
//!
//! Lines are stored verbatim; this module only pulls out the few fields the
//! server acts on. Key order is not fixed and new types appear between CLI
//! versions, so parsing is tolerant: anything unrecognised is `Other` and is
//! passed on unchanged; a line that is not JSON at all is kept as text.

use std::{borrow::Cow, sync::Arc};

use serde::{
    de::{IgnoredAny, MapAccess, SeqAccess, Visitor},
    Deserialize,
};
use serde_json::Value;

/// The type recorded for a stdout line that is not JSON.
pub const INVALID_JSON: &str = "invalid_json";
/// The type recorded for a line of the child's stderr.
pub const STDERR: &str = "stderr";
/// The type recorded for a JSON line that is not an object, or has no
/// string `type`.
pub const UNKNOWN: &str = "unknown";

/// A line's `type` or `subtype`. The names the CLI writes are shared, not
/// allocated again for every line (and for the event and the row made of
/// it); any other is kept as written.
pub type Name = Cow<'static, str>;

/// `text` as a [`Name`].
pub fn name(text: &str) -> Name {
    const KNOWN: [&str; 22] = [
        "assistant",
        "user",
        "system",
        "result",
        "stream_event",
        "control_request",
        "control_response",
        "control_cancel_request",
        "init",
        "success",
        "status",
        "api_retry",
        "error_during_execution",
        "error_max_turns",
        "error_max_budget_usd",
        "hook_started",
        "hook_response",
        "compact_boundary",
        "permission_denied",
        STDERR,
        INVALID_JSON,
        UNKNOWN,
    ];
    match KNOWN.iter().find(|&&known| known == text) {
        Some(&known) => Cow::Borrowed(known),
        None => Cow::Owned(text.to_owned()),
    }
}

/// The top-level fields every line may carry, and the two the server reads
/// from particular lines (`model` of `init`, `message.id` of `assistant`),
/// all in one pass over the line. Strings are borrowed from the line where
/// they have no escapes; a field that is not a string counts as absent.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Header<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    subtype: Text<'a>,
    #[serde(borrow)]
    uuid: Text<'a>,
    #[serde(borrow)]
    session_id: Text<'a>,
    #[serde(borrow)]
    model: Text<'a>,
    #[serde(borrow)]
    message: ApiMessage<'a>,
}

/// A string field, or None for any other JSON value (skipped, not an error).
#[derive(Debug, Default)]
struct Text<'a>(Option<Cow<'a, str>>);

impl Text<'_> {
    fn owned(self) -> Option<String> {
        self.0.map(Cow::into_owned)
    }

    fn name(&self) -> Option<Name> {
        self.0.as_deref().map(name)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text(Some(Cow::Owned(v.to_owned()))))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }
    fn visit_unit<E>(self) -> Result<Text<'de>, E> {
        Ok(Text(None))
    }
}

/// The `id` of a line's `message` (an API reply's id), if it is an object
/// with a string `id`; anything else there is skipped, not an error.
#[derive(Debug, Default)]
struct ApiMessage<'a> {
    id: Text<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ApiMessage<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any value but an object is read (and skipped) as Text is.
        struct Id;
        impl<'de> Visitor<'de> for Id {
            type Value = ApiMessage<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ApiMessage<'de>, A::Error> {
                let mut id = Text(None);
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match key.0.as_deref() {
                        Some("id") => id = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(ApiMessage { id })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ApiMessage<'de>, A::Error> {
                TextVisitor.visit_seq(seq).map(|_| ApiMessage::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<ApiMessage<'de>, E> {
                Ok(ApiMessage::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<ApiMessage<'de>, E> {
                Ok(ApiMessage::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<ApiMessage<'de>, E> {
                Ok(ApiMessage::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<ApiMessage<'de>, E> {
                Ok(ApiMessage::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<ApiMessage<'de>, E> {
                Ok(ApiMessage::default())
            }
            fn visit_unit<E>(self) -> Result<ApiMessage<'de>, E> {
                Ok(ApiMessage::default())
            }
        }
        deserializer.deserialize_any(Id)
    }
}

/// What the server does with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `system`/`init`: carries Claude's session id.
    Init,
    /// The end of a turn; the outcome is read from it.
    Result,
    /// A partial-token event (`--include-partial-messages`): live only.
    StreamEvent,
    /// The CLI answered one of our control requests.
    ControlResponse,
    /// The CLI asks us something (permission prompts, hooks).
    ControlRequest,
    /// Not JSON; kept as text.
    Invalid,
    /// Everything else, known or not: stored and forwarded unchanged.
    Other,
}

/// One parsed stdout line.
#[derive(Debug, Clone)]
pub struct Line {
    pub kind: LineKind,
    /// The `type` field (or [`INVALID_JSON`], [`UNKNOWN`]).
    pub type_name: Name,
    pub subtype: Option<Name>,
    pub uuid: Option<String>,
    /// `session_id` of an `init` line (every line carries it; only that one
    /// is read).
    pub session_id: Option<String>,
    /// `model` of an `init` line.
    pub model: Option<String>,
    /// `message.id` of an `assistant` line: the API reply it belongs to
    /// (a reply of several blocks comes as several lines sharing it).
    pub api_message_id: Option<String>,
    /// The line as written, without its newline. For a non-JSON line this is
    /// a JSON string holding the text, so the payload is always JSON.
    /// Shared with the event that publishes it and the row that stores it.
    pub payload: Arc<str>,
}

impl Line {
    /// Parses one line (without the trailing newline). A byte that is not
    /// UTF-8 is replaced first, so the payload is always valid text.
    pub fn parse(raw: &[u8]) -> Line {
        match std::str::from_utf8(raw) {
            Ok(text) => Self::parse_text(text),
            Err(_) => Self::parse_text(&String::from_utf8_lossy(raw)),
        }
    }

    /// Parses checked text: the JSON parser does not check the UTF-8 of
    /// every key and string again (about a quarter of its work on a
    /// typical line).
    fn parse_text(text: &str) -> Line {
        match serde_json::from_str::<Header>(text) {
            Ok(header) => Self::from_header(header, text),
            // Valid JSON whose top level is not an object: keep it, with no
            // header fields.
            Err(_) if serde_json::from_str::<IgnoredAny>(text).is_ok() => Line {
                kind: LineKind::Other,
                type_name: UNKNOWN.into(),
                subtype: None,
                uuid: None,
                session_id: None,
                model: None,
                api_message_id: None,
                payload: Arc::from(text),
            },
            Err(_) => Self::text(INVALID_JSON, text),
        }
    }

    /// A line that is not JSON (garbage on stdout, or a stderr line), held
    /// as a JSON string.
    pub fn text(type_name: &str, text: &str) -> Line {
        Line {
            kind: if type_name == INVALID_JSON { LineKind::Invalid } else { LineKind::Other },
            type_name: name(type_name),
            subtype: None,
            uuid: None,
            session_id: None,
            model: None,
            api_message_id: None,
            payload: Value::String(text.to_owned()).to_string().into(),
        }
    }

    fn from_header(header: Header, text: &str) -> Line {
        let type_name = header.kind.name().unwrap_or(Cow::Borrowed(UNKNOWN));
        let subtype = header.subtype.name();
        let kind = match (&*type_name, subtype.as_deref()) {
            ("system", Some("init")) => LineKind::Init,
            ("result", _) => LineKind::Result,
            ("stream_event", _) => LineKind::StreamEvent,
            ("control_response", _) => LineKind::ControlResponse,
            ("control_request", _) => LineKind::ControlRequest,
            _ => LineKind::Other,
        };
        let init = kind == LineKind::Init;
        Line {
            kind,
            type_name,
            subtype,
            uuid: header.uuid.owned(),
            session_id: if init { header.session_id.owned() } else { None },
            model: if init { header.model.owned() } else { None },
            api_message_id: header.message.id.owned(),
            payload: Arc::from(text),
        }
    }

    /// Partial-token events are delivered live and never stored.
    pub fn is_live_only(&self) -> bool {
        self.kind == LineKind::StreamEvent
    }
}

/// A control line from the CLI that the server answers or settles.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlLine {
    /// `control_request` of subtype `can_use_tool`: claude asks before
    /// using a tool, and waits for the answer.
    PermissionPrompt(PermissionPrompt),
    /// `control_cancel_request`: it no longer waits for that answer.
    Cancel { request_id: String },
}

/// What a `can_use_tool` request says.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionPrompt {
    pub request_id: String,
    pub tool_name: String,
    pub tool_use_id: Option<String>,
    pub input: Value,
    pub description: Option<String>,
    pub blocked_path: Option<String>,
    /// `permission_suggestions`: rules the user may apply with an allow.
    pub suggestions: Option<Value>,
}

impl ControlLine {
    /// The control line in `payload`, if it is one the server acts on
    /// (other control requests, e.g. a hook's, are only stored).
    pub fn parse(payload: &str) -> Option<ControlLine> {
        let line = serde_json::from_str::<Value>(payload).ok()?;
        let request_id = line["request_id"].as_str().unwrap_or_default().to_owned();
        match line["type"].as_str()? {
            "control_cancel_request" => Some(ControlLine::Cancel { request_id }),
            "control_request" if line["request"]["subtype"] == "can_use_tool" => {
                let request = &line["request"];
                let text = |key: &str| request[key].as_str().map(str::to_owned);
                Some(ControlLine::PermissionPrompt(PermissionPrompt {
                    request_id,
                    tool_name: text("tool_name").unwrap_or_default(),
                    tool_use_id: text("tool_use_id"),
                    input: request["input"].clone(),
                    description: text("description"),
                    blocked_path: text("blocked_path"),
                    suggestions: request.get("permission_suggestions").cloned(),
                }))
            }
            _ => None,
        }
    }
}

/// The fields of a `result` line the outcome depends on.
#[derive(Debug, Clone, Default)]
pub struct ResultLine {
    pub subtype: Option<String>,
    pub is_error: bool,
    pub num_turns: Option<i64>,
    pub total_cost_usd: Option<f64>,
    pub usage: Option<Value>,
    pub result: Option<Value>,
    pub errors: Option<Vec<Value>>,
    pub terminal_reason: Option<String>,
    pub api_error_status: Option<Value>,
    pub session_id: Option<String>,
    /// The whole line.
    pub raw: Option<Value>,
}

impl ResultLine {
    /// Field by field, so one field of an unexpected type does not turn an
    /// error result into a default (successful-looking) one.
    pub fn parse(payload: &str) -> ResultLine {
        let Ok(raw) = serde_json::from_str::<Value>(payload) else { return ResultLine::default() };
        let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
        let value = |key: &str| raw.get(key).filter(|v| !v.is_null()).cloned();
        ResultLine {
            subtype: text("subtype"),
            is_error: raw.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            num_turns: raw.get("num_turns").and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))),
            total_cost_usd: raw.get("total_cost_usd").and_then(Value::as_f64),
            usage: value("usage"),
            result: value("result"),
            errors: match raw.get("errors") {
                Some(Value::Array(items)) => Some(items.clone()),
                Some(other) if !other.is_null() => Some(vec![other.clone()]),
                _ => None,
            },
            terminal_reason: text("terminal_reason"),
            api_error_status: value("api_error_status"),
            session_id: text("session_id"),
            raw: Some(raw),
        }
    }

    /// A human-readable reason: the result text, else the `errors` list.
    pub fn message(&self) -> String {
        if let Some(Value::String(text)) = &self.result {
            if !text.is_empty() {
                return text.clone();
            }
        }
        let errors: Vec<String> = self
            .errors
            .iter()
            .flatten()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        if errors.is_empty() {
            format!("claude reported {}", self.subtype.as_deref().unwrap_or("an error"))
        } else {
            errors.join("; ")
        }
    }

    /// Whether the API refused the request for rate or usage limits.
    pub fn is_rate_limited(&self) -> bool {
        match &self.api_error_status {
            Some(Value::Number(n)) => n.as_i64() == Some(429),
            Some(Value::String(s)) => s == "429",
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_of_a_recorded_permission_prompt() {
        let recording = include_str!("../../tests/fixtures/control/permission_prompt_interrupt_pending.jsonl");
        let controls: Vec<ControlLine> = recording.lines().filter_map(ControlLine::parse).collect();
        let [ControlLine::PermissionPrompt(prompt), ControlLine::Cancel { request_id }] = controls.as_slice() else {
            panic!("a prompt, then its cancel: {controls:?}");
        };
        assert_eq!(&prompt.request_id, request_id);
        assert_eq!(prompt.tool_name, "Bash");
        assert_eq!(prompt.input["command"], "touch created.txt && echo made");
        assert_eq!(prompt.description.as_deref(), Some("Run a command"));
        assert!(prompt.suggestions.as_ref().is_some_and(|s| s.as_array().is_some_and(|s| !s.is_empty())));
        // Control requests the server does not act on, and other lines.
        let interrupt = r#"{"type":"control_request","request_id":"i","request":{"subtype":"interrupt"}}"#;
        assert_eq!(ControlLine::parse(interrupt), None);
        assert_eq!(ControlLine::parse(r#"{"type":"assistant"}"#), None);
        assert_eq!(ControlLine::parse("not json"), None);
    }

    #[test]
    fn the_api_message_id_and_the_model_come_with_the_header() {
        let id = |line: &str| Line::parse(line.as_bytes()).api_message_id;
        let reply = r#"{"message":{"content":[{"type":"tool_use","id":"toolu_1"}],"id":"msg_1"},"type":"assistant"}"#;
        assert_eq!(id(reply).as_deref(), Some("msg_1"));
        assert_eq!(id(r#"{"type":"assistant","message":{"content":{"id":"nested"}}}"#), None);
        for odd in [r#""text""#, "[1,{}]", "3", "true", "null", r#"{"id":7}"#] {
            let line = format!(r#"{{"type":"assistant","message":{odd},"uuid":"u"}}"#);
            let parsed = Line::parse(line.as_bytes());
            assert_eq!((parsed.api_message_id, parsed.uuid.as_deref()), (None, Some("u")), "{odd}");
        }
        for line in fixture_lines("tool_bash") {
            match &*line.type_name {
                "assistant" => assert!(line.api_message_id.as_deref().is_some_and(|id| id.starts_with("msg_"))),
                "system" if line.kind == LineKind::Init => assert!(line.model.is_some()),
                _ => assert_eq!(line.api_message_id, None),
            }
        }
    }

    fn fixture_lines(name: &str) -> Vec<Line> {
        let path = format!("{}/tests/fixtures/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap().lines().map(|l| Line::parse(l.as_bytes())).collect()
    }

    #[test]
    fn recorded_text_run_has_init_then_result() {
        let lines = fixture_lines("text");
        assert_eq!(lines.first().unwrap().kind, LineKind::Init);
        assert!(lines.first().unwrap().session_id.is_some());
        assert_eq!(lines.last().unwrap().kind, LineKind::Result);
        let result = ResultLine::parse(&lines.last().unwrap().payload);
        assert_eq!(result.subtype.as_deref(), Some("success"));
        assert!(!result.is_error);
        assert!(result.total_cost_usd.unwrap() > 0.0);
    }

    #[test]
    fn every_recorded_line_is_json_with_a_type() {
        let root = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        let entries = std::fs::read_dir(&root).unwrap().chain(std::fs::read_dir(format!("{root}/control")).unwrap());
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            for raw in std::fs::read_to_string(&path).unwrap().lines() {
                let line = Line::parse(raw.as_bytes());
                assert_ne!(line.kind, LineKind::Invalid, "{}: {raw}", path.display());
                assert_ne!(line.type_name, "unknown", "{}: {raw}", path.display());
                assert_eq!(&*line.payload, raw);
                seen += 1;
            }
        }
        assert!(seen > 100);
    }

    #[test]
    fn partial_messages_are_live_only() {
        let lines = fixture_lines("text_partial_messages");
        assert!(lines.iter().any(Line::is_live_only));
        assert!(lines.iter().any(|l| l.kind == LineKind::Result));
    }

    #[test]
    fn max_turns_and_rate_limits_are_recognised() {
        let last = fixture_lines("max_turns_1").pop().unwrap();
        let result = ResultLine::parse(&last.payload);
        assert_eq!(result.subtype.as_deref(), Some("error_max_turns"));
        assert!(result.message().contains("maximum number of turns"));

        // The recording's first turn hit the limit; its second one worked.
        let lines = fixture_lines("control/rate_limit_429_no_retry");
        let results: Vec<ResultLine> =
            lines.iter().filter(|l| l.kind == LineKind::Result).map(|l| ResultLine::parse(&l.payload)).collect();
        assert!(results[0].is_error && results[0].is_rate_limited());
        assert!(results[0].message().contains("429"));
        assert!(!results[1].is_error && !results[1].is_rate_limited());
    }

    #[test]
    fn an_odd_field_does_not_hide_an_error() {
        let result = ResultLine::parse(
            r#"{"type":"result","subtype":"error_x","is_error":true,"errors":{"a":1},"num_turns":2.0}"#,
        );
        assert!(result.is_error);
        assert_eq!(result.num_turns, Some(2));
        assert_eq!(result.errors.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn garbage_and_odd_lines_are_kept() {
        let garbage = Line::parse(b"not json {");
        assert_eq!(garbage.kind, LineKind::Invalid);
        assert_eq!(&*garbage.payload, "\"not json {\"");
        let odd = Line::parse(br#"{"type":"brand_new","subtype":7,"x":[1]}"#);
        assert_eq!((odd.kind, &*odd.type_name, odd.subtype), (LineKind::Other, "brand_new", None));
        let array = Line::parse(b"[1,2]");
        assert_eq!(array.type_name, "unknown");
        assert_eq!(&*array.payload, "[1,2]");
    }

    /// The header's strings are borrowed where they can be; escaped ones
    /// are unescaped, odd types are absent, and a bad byte is replaced,
    /// in a string the parser skips or one it reads (the payload is always
    /// valid UTF-8).
    #[test]
    fn header_strings_escapes_and_bad_bytes() {
        let escaped = Line::parse(br#"{"type":"syst\u0065m","subtype":"in\u0069t","session_id":"s\"1","x":{"y":[]}}"#);
        assert_eq!((escaped.kind, escaped.session_id.as_deref()), (LineKind::Init, Some("s\"1")));
        let numbers = Line::parse(br#"{"type":5,"uuid":{"a":1},"session_id":[1],"model":null}"#);
        assert_eq!(numbers.type_name, "unknown");
        assert_eq!((numbers.uuid, numbers.session_id, numbers.model), (None, None, None));
        let mut raw = br#"{"type":"assistant","text":"ab"}"#.to_vec();
        raw[28] = 0xff;
        let bad = Line::parse(&raw);
        assert_eq!(bad.type_name, "assistant");
        assert_eq!(&*bad.payload, "{\"type\":\"assistant\",\"text\":\"\u{fffd}b\"}");
        let mut raw = br#"{"type":"system","subtype":"init","session_id":"s1"}"#.to_vec();
        raw[11] = 0xff;
        let bad = Line::parse(&raw);
        assert_eq!((bad.kind, &*bad.type_name, bad.session_id.as_deref()), (LineKind::Other, "sy\u{fffd}tem", None));
        assert!(bad.payload.starts_with("{\"type\":\"sy\u{fffd}tem\""));
    }
}
