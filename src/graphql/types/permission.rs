//! `PermissionRequest`: Claude asks before using a tool.

use async_graphql::{Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::permission_request;

use super::Json;
use crate::db::permissions as p;
use crate::error::{AppError, AppResult};

/// Where a permission request is.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PermissionStatus {
    /// Waiting for an answer.
    Pending,
    Allowed,
    Denied,
    /// Not answered in time: denied.
    Expired,
    /// Claude withdrew it (the turn was interrupted).
    Cancelled,
}

/// What a permission request asks.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum PermissionKind {
    /// May Claude run this tool with this input?
    ToolUse,
    /// Claude asks the user (the `AskUserQuestion` tool): see `questions`;
    /// answer with `answers`.
    Question,
    /// Claude has a plan and asks to go ahead (the `ExitPlanMode` tool):
    /// see `plan`; ALLOW approves it, DENY with a `message` keeps it planning.
    Plan,
}

/// The tool that asks the user questions.
pub const ASK_USER_QUESTION: &str = "AskUserQuestion";
/// The tool that asks to leave plan mode with a plan.
pub const EXIT_PLAN_MODE: &str = "ExitPlanMode";

/// A question Claude asks, with the answers it offers.
#[derive(SimpleObject)]
pub struct Question {
    pub question: String,
    /// A short label for the question.
    pub header: Option<String>,
    pub options: Vec<QuestionOption>,
    /// Whether several options may be chosen.
    pub multi_select: bool,
}

/// One offered answer.
#[derive(SimpleObject)]
pub struct QuestionOption {
    pub label: String,
    pub description: Option<String>,
}

/// The answer to one question of a QUESTION request.
#[derive(InputObject)]
pub struct QuestionAnswer {
    /// The question's text, as in `Question.question`.
    pub question: String,
    /// The labels of the chosen options (one unless the question is
    /// `multiSelect`), or the user's own words.
    pub selected: Vec<String>,
}

pub struct PermissionRequest(pub permission_request::Model);

impl PermissionRequest {
    pub fn kind(&self) -> PermissionKind {
        match self.0.tool_name.as_str() {
            ASK_USER_QUESTION => PermissionKind::Question,
            EXIT_PLAN_MODE => PermissionKind::Plan,
            _ => PermissionKind::ToolUse,
        }
    }

    /// The tool input that answers a QUESTION request: its own input with
    /// `answers` (question text to the chosen labels, comma-separated), as
    /// the CLI's AskUserQuestion tool reads it.
    pub fn answered_with(&self, answers: &[QuestionAnswer]) -> AppResult<serde_json::Value> {
        if self.kind() != PermissionKind::Question {
            return Err(AppError::bad_input("answers", "only a QUESTION request takes `answers`"));
        }
        let questions = self.questions();
        let mut chosen = serde_json::Map::new();
        for answer in answers {
            let Some(question) = questions.iter().find(|q| q.question == answer.question) else {
                return Err(AppError::bad_input("answers", format!("no question {:?} was asked", answer.question)));
            };
            let picked = answer.selected.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
            if picked.is_empty() || (picked.len() > 1 && !question.multi_select) {
                let why = format!("answer {:?} with one choice (several only when multiSelect)", answer.question);
                return Err(AppError::bad_input("answers", why));
            }
            if picked.iter().any(|s| s.contains('\0')) || chosen.contains_key(&answer.question) {
                return Err(AppError::bad_input("answers", format!("a bad answer to {:?}", answer.question)));
            }
            chosen.insert(answer.question.clone(), picked.join(", ").into());
        }
        if let Some(missing) = questions.iter().find(|q| !chosen.contains_key(&q.question)) {
            return Err(AppError::bad_input("answers", format!("{:?} has no answer", missing.question)));
        }
        let mut input = self.0.input.clone();
        if let Some(fields) = input.as_object_mut() {
            fields.insert("answers".into(), serde_json::Value::Object(chosen));
        }
        Ok(input)
    }

    /// The questions of an `AskUserQuestion` request (none for others).
    pub fn questions(&self) -> Vec<Question> {
        if self.kind() != PermissionKind::Question {
            return Vec::new();
        }
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
        list(&self.0.input["questions"])
            .iter()
            .map(|q| Question {
                question: text(&q["question"]).unwrap_or_default(),
                header: text(&q["header"]),
                options: list(&q["options"])
                    .iter()
                    .map(|o| QuestionOption {
                        label: text(&o["label"]).unwrap_or_default(),
                        description: text(&o["description"]),
                    })
                    .collect(),
                multi_select: q["multiSelect"].as_bool().unwrap_or(false),
            })
            .collect()
    }
}

/// Claude asks before using a tool (`can_use_tool`): a tool use, a
/// question, or a plan; and how it was answered.
#[Object]
impl PermissionRequest {
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn execution_id(&self) -> ID {
        ID(self.0.execution_id.to_string())
    }

    /// What it asks: a tool use, a question, or a plan to approve.
    #[graphql(name = "kind")]
    async fn kind_field(&self) -> PermissionKind {
        self.kind()
    }

    /// For a QUESTION: what Claude asks.
    #[graphql(name = "questions")]
    async fn questions_field(&self) -> Vec<Question> {
        self.questions()
    }

    /// For a PLAN: the plan (markdown).
    async fn plan(&self) -> Option<&str> {
        match self.kind() {
            PermissionKind::Plan => self.0.input["plan"].as_str(),
            _ => None,
        }
    }

    async fn tool_name(&self) -> &str {
        &self.0.tool_name
    }

    /// Links the request to the `tool_use` block of the assistant message.
    async fn tool_use_id(&self) -> Option<&str> {
        self.0.tool_use_id.as_deref()
    }

    /// The input Claude wants to run the tool with.
    async fn input(&self) -> Json {
        Json(self.0.input.clone())
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The path that needs the permission, when there is one.
    async fn blocked_path(&self) -> Option<&str> {
        self.0.blocked_path.as_deref()
    }

    /// Permission changes Claude suggests (see `applySuggestion`).
    async fn suggestions(&self) -> Option<Json> {
        self.0.suggestions.clone().map(Json)
    }

    async fn status(&self) -> PermissionStatus {
        match self.0.status.as_str() {
            p::ALLOWED => PermissionStatus::Allowed,
            p::DENIED => PermissionStatus::Denied,
            p::EXPIRED => PermissionStatus::Expired,
            p::CANCELLED => PermissionStatus::Cancelled,
            _ => PermissionStatus::Pending,
        }
    }

    /// What was sent back to Claude.
    async fn decision(&self) -> Option<Json> {
        self.0.decision.clone().map(Json)
    }

    /// The user who answered (none when it expired or was cancelled).
    async fn answered_by(&self) -> Option<&str> {
        self.0.answered_by.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }

    async fn answered_at(&self) -> Option<DateTime<Utc>> {
        self.0.answered_at
    }
}
