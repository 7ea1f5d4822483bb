//! `executionEvents` frames written without the GraphQL engine.
//!
//! A subscription's selection is compiled once, when it subscribes, into a
//! plan per event type: the response keys in order and what each one
//! shows. An event is then written straight to JSON text, with the stored
//! line inserted as it is (never parsed and written out again). What a
//! plan cannot show (directives, arguments, the typed `claudeMessage`,
//! permission requests, a key selected twice with sub-selections) is left to
//! the engine, for that event type only; the output is the same either way
//! (a test renders every case both ways).

use std::fmt::Write;

use async_graphql::{
    parser::types::{ExecutableDocument, FragmentDefinition, Selection, SelectionSet},
    Positioned, ScalarType,
};
use chrono::{DateTime, Utc};

use crate::events::Event;

/// The compiled selection of one `executionEvents` subscription.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The response key of the root field (its alias, or `executionEvents`).
    root: String,
    message: Option<Vec<(String, Field)>>,
    progress: Option<Vec<(String, Field)>>,
    status: Option<Vec<(String, Field)>>,
}

/// A field the plan writes itself.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Typename,
    Seq,
    ExecutionId,
    Type,
    Subtype,
    Message,
    Progress,
    MessageCount,
    NumTurns,
    CostUsd,
    ElapsedMs,
    StalledSince,
    Status,
    Error(Vec<(String, ErrorField)>),
}

#[derive(Debug, Clone, PartialEq)]
enum ErrorField {
    Typename,
    Code,
    Message,
}

impl Plan {
    /// The plan of the selected operation, if it is an `executionEvents`
    /// subscription whose root field has no directive.
    pub fn compile(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<Plan> {
        let operation = crate::graphql::selected_operation(document, operation_name)?;
        if !operation.node.directives.is_empty() {
            return None;
        }
        let [item] = operation.node.selection_set.node.items.as_slice() else { return None };
        let Selection::Field(root) = &item.node else { return None };
        let root = &root.node;
        if root.name.node != "executionEvents" || !root.directives.is_empty() {
            return None;
        }
        let fragments = &document.fragments;
        let plan_for = |typename: &str| {
            let mut fields = Vec::new();
            collect(&root.selection_set, typename, fragments, &mut fields).then_some(fields)
        };
        Some(Plan {
            root: root.alias.as_ref().unwrap_or(&root.name).node.to_string(),
            message: plan_for("MessageEvent"),
            progress: plan_for("ProgressEvent"),
            status: plan_for("StatusEvent"),
        })
    }

    /// The response text for `event`, or None when the engine must render it.
    pub fn render(&self, event: &Event) -> Option<String> {
        let (typename, fields) = match event {
            Event::Message(_) => ("MessageEvent", self.message.as_ref()?),
            Event::Progress(_) => ("ProgressEvent", self.progress.as_ref()?),
            Event::Status(_) => ("StatusEvent", self.status.as_ref()?),
            Event::Permission(_) => return None,
        };
        if fields.is_empty() {
            // Nothing selected on this type: the engine's own answer.
            return None;
        }
        let capacity = match event {
            Event::Message(m) => m.payload.len() + 128,
            _ => 256,
        };
        let mut out = String::with_capacity(capacity);
        out.push_str("{\"data\":{");
        key(&mut out, &self.root);
        out.push('{');
        for (i, (name, field)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            key(&mut out, name);
            value(&mut out, typename, field, event);
        }
        out.push_str("}}}");
        Some(out)
    }
}

/// Adds the fields `selection` selects on `typename` to `fields`, in
/// order; false if one of them is not for the plan.
fn collect(
    selection: &Positioned<SelectionSet>,
    typename: &str,
    fragments: &std::collections::HashMap<async_graphql::Name, Positioned<FragmentDefinition>>,
    fields: &mut Vec<(String, Field)>,
) -> bool {
    for item in &selection.node.items {
        let ok = match &item.node {
            Selection::Field(f) => {
                let f = &f.node;
                if !f.directives.is_empty() || !f.arguments.is_empty() {
                    return false;
                }
                let Some(field) = field(typename, f.name.node.as_str(), &f.selection_set) else { return false };
                let name = f.alias.as_ref().unwrap_or(&f.name).node.to_string();
                match fields.iter().find(|(k, _)| *k == name) {
                    // The same leaf again merges into the first.
                    Some((_, first)) => *first == field && !matches!(field, Field::Error(_)),
                    None => {
                        fields.push((name, field));
                        true
                    }
                }
            }
            Selection::InlineFragment(f) => {
                let f = &f.node;
                if !f.directives.is_empty() {
                    return false;
                }
                let on = f.type_condition.as_ref().map(|c| c.node.on.node.as_str());
                !applies(on, typename) || collect(&f.selection_set, typename, fragments, fields)
            }
            Selection::FragmentSpread(s) => {
                let Some(fragment) = fragments.get(&s.node.fragment_name.node) else { return false };
                if !s.node.directives.is_empty() || !fragment.node.directives.is_empty() {
                    return false;
                }
                let on = Some(fragment.node.type_condition.node.on.node.as_str());
                !applies(on, typename) || collect(&fragment.node.selection_set, typename, fragments, fields)
            }
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a fragment on `on` applies to an event of `typename`.
fn applies(on: Option<&str>, typename: &str) -> bool {
    matches!(on, None | Some("ExecutionEvent")) || on == Some(typename)
}

fn field(typename: &str, name: &str, selection: &Positioned<SelectionSet>) -> Option<Field> {
    let leaf = selection.node.items.is_empty();
    let field = match (typename, name) {
        (_, "__typename") => Field::Typename,
        (_, "executionId") => Field::ExecutionId,
        ("MessageEvent", "seq") => Field::Seq,
        ("MessageEvent", "type") => Field::Type,
        ("MessageEvent", "subtype") => Field::Subtype,
        ("MessageEvent", "message") => Field::Message,
        ("ProgressEvent", "progress") => Field::Progress,
        ("ProgressEvent", "messageCount") => Field::MessageCount,
        ("ProgressEvent", "numTurns") => Field::NumTurns,
        ("ProgressEvent", "costUsd") => Field::CostUsd,
        ("ProgressEvent", "elapsedMs") => Field::ElapsedMs,
        ("ProgressEvent", "stalledSince") => Field::StalledSince,
        ("StatusEvent", "status") => Field::Status,
        ("StatusEvent", "error") => return error_fields(selection).map(Field::Error),
        _ => return None,
    };
    leaf.then_some(field)
}

/// `error { code message }`: plain fields only.
fn error_fields(selection: &Positioned<SelectionSet>) -> Option<Vec<(String, ErrorField)>> {
    let mut fields: Vec<(String, ErrorField)> = Vec::new();
    for item in &selection.node.items {
        let Selection::Field(f) = &item.node else { return None };
        let f = &f.node;
        if !f.directives.is_empty() || !f.arguments.is_empty() || !f.selection_set.node.items.is_empty() {
            return None;
        }
        let field = match f.name.node.as_str() {
            "__typename" => ErrorField::Typename,
            "code" => ErrorField::Code,
            "message" => ErrorField::Message,
            _ => return None,
        };
        let name = f.alias.as_ref().unwrap_or(&f.name).node.to_string();
        match fields.iter().find(|(k, _)| *k == name) {
            Some((_, first)) if *first == field => {}
            Some(_) => return None,
            None => fields.push((name, field)),
        }
    }
    (!fields.is_empty()).then_some(fields)
}

fn key(out: &mut String, name: &str) {
    // Response keys are GraphQL names: nothing to escape.
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
}

fn value(out: &mut String, typename: &str, field: &Field, event: &Event) {
    match (field, event) {
        (Field::Typename, _) => string(out, typename),
        (Field::ExecutionId, event) => {
            let id = match event {
                Event::Message(m) => m.execution_id,
                Event::Progress(p) => p.execution_id,
                Event::Status(s) => s.execution_id,
                Event::Permission(p) => p.execution_id,
            };
            let _ = write!(out, "\"{id}\"");
        }
        (Field::Seq, Event::Message(m)) => number(out, m.seq),
        (Field::Type, Event::Message(m)) => string(out, &m.type_name),
        (Field::Subtype, Event::Message(m)) => optional_string(out, m.subtype.as_deref()),
        // Stored lines are JSON text (a line that was not JSON is kept as a
        // JSON string): they go out as they came.
        (Field::Message, Event::Message(m)) => out.push_str(&m.payload),
        (Field::Progress, Event::Progress(p)) => float(out, Some(p.progress)),
        (Field::MessageCount, Event::Progress(p)) => number(out, Some(p.message_count)),
        (Field::NumTurns, Event::Progress(p)) => number(out, Some(p.num_turns)),
        (Field::CostUsd, Event::Progress(p)) => float(out, p.cost_usd),
        (Field::ElapsedMs, Event::Progress(p)) => number(out, Some(p.elapsed_ms)),
        (Field::StalledSince, Event::Progress(p)) => date_time(out, p.stalled_since),
        (Field::Status, Event::Status(s)) => string(out, s.status.as_str()),
        (Field::Error(fields), Event::Status(s)) => match &s.error {
            None => out.push_str("null"),
            Some(error) => {
                out.push('{');
                for (i, (name, field)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    key(out, name);
                    match field {
                        ErrorField::Typename => string(out, "ExecutionError"),
                        ErrorField::Code => string(out, &error.code),
                        ErrorField::Message => string(out, &error.message),
                    }
                }
                out.push('}');
            }
        },
        // Compiled per event type: a field never meets another type's event.
        _ => out.push_str("null"),
    }
}

fn string(out: &mut String, text: &str) {
    // Writing into a String cannot fail.
    let _ = serde_json::to_writer(StringWriter(out), text);
}

fn optional_string(out: &mut String, text: Option<&str>) {
    match text {
        Some(text) => string(out, text),
        None => out.push_str("null"),
    }
}

fn number(out: &mut String, n: Option<impl std::fmt::Display>) {
    match n {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}

/// As the engine writes a Float: through serde_json's number (null when
/// not finite).
fn float(out: &mut String, n: Option<f64>) {
    match n.and_then(serde_json::Number::from_f64) {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}

/// As the engine writes a DateTime.
fn date_time(out: &mut String, at: Option<DateTime<Utc>>) {
    match at.map(|at| at.to_value()) {
        Some(async_graphql::Value::String(text)) => string(out, &text),
        _ => out.push_str("null"),
    }
}

/// Lets serde_json write into a String (it writes only UTF-8 for a
/// string).
struct StringWriter<'a>(&'a mut String);

impl std::io::Write for StringWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.0.push_str(text);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::StreamExt;
    use uuid::Uuid;

    use super::*;
    use crate::{
        events::{MessageEvent, PermissionEvent, ProgressEvent, RunError, StatusEvent},
        graphql::{build_schema, subscription::RenderOne},
    };

    fn events() -> Vec<Event> {
        let execution_id = Uuid::now_v7();
        let message = |seq: Option<i64>, type_name: &str, subtype: Option<&str>, payload: &str| {
            Event::Message(MessageEvent {
                execution_id,
                seq,
                type_name: crate::claude::stream::name(type_name),
                subtype: subtype.map(crate::claude::stream::name),
                payload: Arc::from(payload),
                renders: Default::default(),
            })
        };
        let progress = |cost: Option<f64>, stalled: Option<DateTime<Utc>>, progress: f64| {
            Event::Progress(ProgressEvent {
                execution_id,
                progress,
                message_count: 12,
                num_turns: 3,
                cost_usd: cost,
                elapsed_ms: 1500,
                stalled_since: stalled,
                renders: Default::default(),
            })
        };
        let status = |status: crate::db::executions::Status, error: Option<RunError>| {
            Event::Status(StatusEvent { execution_id, status, error, after_seq: 0, renders: Default::default() })
        };
        vec![
            message(
                Some(1),
                "system",
                Some("init"),
                r#"{"type":"system","subtype":"init","n":1.5,"u":"é\u0000\"","a":[1,{"b":null}]}"#,
            ),
            message(None, "stream_event", None, r#"{"type":"stream_event","event":{"delta":{"text":"hi"}}}"#),
            message(Some(2), "stderr", None, r#""a warning \" with quotes""#),
            progress(Some(0.0123), None, 0.25),
            progress(None, Some(Utc::now()), 1.0),
            progress(Some(1e-9), None, 0.0),
            status(crate::db::executions::Status::Running, None),
            status(
                crate::db::executions::Status::Failed,
                Some(RunError { code: "CLAUDE_ERROR".into(), message: "it \"failed\"\n".into() }),
            ),
        ]
    }

    const DOCUMENTS: &[&str] = &[
        "subscription($id: ID!, $after: Int!) { executionEvents(executionId: $id, afterSeq: $after) {
            __typename
            ... on MessageEvent { seq executionId type subtype message }
            ... on ProgressEvent { executionId progress messageCount numTurns costUsd elapsedMs stalledSince }
            ... on StatusEvent { executionId status error { code message } } } }",
        "subscription S($id: ID!) { e: executionEvents(executionId: $id) {
            ...F kind: __typename ... on MessageEvent { seq s2: seq m: message seq }
            ... on StatusEvent { error { __typename why: message code } } } }
         fragment F on ExecutionEvent { ... on ProgressEvent { p: progress } ... on StatusEvent { status } }",
        "subscription($id: ID!) { executionEvents(executionId: $id) { ... on MessageEvent { message } } }",
        // The engine's: directives, typed messages, merged sub-selections.
        "subscription($id: ID!, $t: Boolean!) { executionEvents(executionId: $id) {
            __typename ... on MessageEvent { seq @include(if: $t) claudeMessage { __typename } }
            ... on StatusEvent { error { code } error { message } } } }",
    ];

    #[tokio::test]
    async fn frames_match_the_engine() {
        let schema = build_schema(None);
        let mut compared = 0;
        for document in DOCUMENTS {
            let parsed = async_graphql::parser::parse_query(document).unwrap();
            let plan = Plan::compile(&parsed, None).expect("an executionEvents subscription");
            for event in events() {
                let event = Arc::new(event);
                let variables = async_graphql::Variables::from_json(serde_json::json!({
                    "id": Uuid::now_v7().to_string(), "after": 0, "t": true }));
                let request =
                    async_graphql::Request::new(*document).variables(variables).data(RenderOne(event.clone()));
                let response = schema.execute_stream(request).next().await.unwrap();
                assert!(response.errors.is_empty(), "{document}: {:?}", response.errors);
                let engine = serde_json::to_value(&response).unwrap();
                let Some(fast) = plan.render(&event) else { continue };
                let fast: serde_json::Value = serde_json::from_str(&fast).unwrap();
                assert_eq!(fast, engine, "{document}\n{event:?}");
                // Key order too.
                assert_eq!(fast.to_string(), engine.to_string());
                compared += 1;
            }
        }
        assert_eq!(compared, 8 + 8 + 3 + 3, "every event the plans write was compared");
    }

    #[test]
    fn what_the_plan_cannot_do_goes_to_the_engine() {
        let plan = |document: &str| Plan::compile(&async_graphql::parser::parse_query(document).unwrap(), None);
        let last = plan(DOCUMENTS[3]).unwrap();
        assert!(last.message.is_none() && last.status.is_none() && last.progress.is_some());
        let permission = Event::Permission(PermissionEvent {
            execution_id: Uuid::now_v7(),
            request: Box::new(entity::permission_request::Model {
                id: Uuid::now_v7(),
                execution_id: Uuid::now_v7(),
                request_id: "r".into(),
                tool_name: "Bash".into(),
                tool_use_id: None,
                input: serde_json::json!({}),
                description: None,
                blocked_path: None,
                suggestions: None,
                status: "PENDING".into(),
                decision: None,
                answered_by: None,
                created_at: Utc::now(),
                expires_at: Utc::now(),
                answered_at: None,
            }),
            renders: Default::default(),
        });
        assert!(plan(DOCUMENTS[0]).unwrap().render(&permission).is_none());
        assert!(plan("query { __typename }").is_none());
        assert!(plan("subscription { dashboardEvents { __typename } }").is_none());
    }
}
