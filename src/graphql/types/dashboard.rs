//! What `dashboardEvents` delivers.

use async_graphql::{Object, Union};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use super::{event::ProgressEvent, Execution, PermissionRequest};
use crate::{error::AppError, events::dashboard::DashboardItem};

/// One event of a dashboard.
#[derive(Union)]
pub enum DashboardEvent {
    ExecutionUpdate(ExecutionUpdate),
    Progress(ProgressEvent),
}

impl From<DashboardItem> for DashboardEvent {
    fn from(item: DashboardItem) -> Self {
        match item {
            DashboardItem::Update { cursor, execution, waiting } => {
                DashboardEvent::ExecutionUpdate(ExecutionUpdate { cursor, execution, waiting })
            }
            DashboardItem::Progress(event) => DashboardEvent::Progress(ProgressEvent(event)),
        }
    }
}

pub struct ExecutionUpdate {
    cursor: i64,
    execution: Box<entity::execution::Model>,
    waiting: Vec<entity::permission_request::Model>,
}

/// An execution was created or changed: its status, a stall, or its
/// permission requests. It comes as it is now; keep the latest per id.
#[Object]
impl ExecutionUpdate {
    /// Pass the last one you received as `after` to resume without a gap.
    async fn cursor(&self) -> String {
        encode_cursor(self.cursor)
    }

    async fn execution(&self) -> Execution {
        Execution((*self.execution).clone())
    }

    /// Its permission requests that wait for your answer.
    async fn pending_permission_requests(&self) -> Vec<PermissionRequest> {
        self.waiting.iter().cloned().map(PermissionRequest).collect()
    }
}

const PREFIX: &str = "dashboard:";

fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{seq}"))
}

/// A cursor `ExecutionUpdate.cursor` gave.
pub fn decode_cursor(cursor: &str) -> Result<i64, AppError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(PREFIX)?.parse::<i64>().ok())
        .filter(|seq| *seq >= 0)
        .ok_or_else(|| AppError::bad_input("after", "`after` is not a dashboard cursor this server issued"))
}
