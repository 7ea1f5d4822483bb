//! Mutations that manage schedules (the `schedules` query is on the root).

use async_graphql::{Context, InputObject, Object, ID};
use chrono::Utc;

use super::management::{checked_name, DeletePayload};
use super::mutation::RunOptionsInput;
use super::types::{parse_id, schedule::Schedule, state, viewer};
use crate::{
    db,
    error::{AppError, AppResult, Gql},
    schedules::Pattern,
};

/// Schedules one user may have.
const MAX_SCHEDULES: u64 = 50;

/// A prompt to start by a cron pattern.
#[derive(InputObject)]
pub struct CreateScheduleInput {
    pub workspace_id: ID,
    pub name: String,
    /// Five fields (minute, hour, day of month, month, weekday), e.g.
    /// `0 9 * * MON-FRI`, or six with seconds first. Occurrences must be at
    /// least MIN_SCHEDULE_INTERVAL apart.
    pub cron: String,
    /// An IANA zone, e.g. `Europe/Berlin`. Default UTC.
    pub timezone: Option<String>,
    pub prompt: String,
    /// Continue one session across occurrences (default false: a new
    /// session each time).
    pub same_session: Option<bool>,
    #[graphql(flatten)]
    pub options: RunOptionsInput,
}

#[derive(Default)]
pub struct ScheduleMutation;

#[Object]
impl ScheduleMutation {
    /// Creates a schedule, enabled, from its next occurrence.
    async fn create_schedule(&self, ctx: &Context<'_>, input: CreateScheduleInput) -> async_graphql::Result<Schedule> {
        let state = state(ctx)?;
        let owner = &viewer(ctx)?.sub;
        let name = checked_name("name", &input.name).gql()?.to_owned();
        let timezone = input.timezone.clone().unwrap_or_else(|| "UTC".into());
        let pattern = checked_pattern(&input.cron, &timezone, state.config.min_schedule_interval).gql()?;
        let next =
            pattern.next_after(Utc::now()).ok_or(AppError::bad_input("cron", "the pattern never fires")).gql()?;
        let cron = input.cron.trim().to_owned();
        let same_session = input.same_session.unwrap_or(false);
        // The start it makes, checked as startExecution checks one.
        let request = input.options.start(state.executor.policy(), input.workspace_id, input.prompt).gql()?;
        db::workspaces::get(&state.db, owner, request.workspace_id)
            .await
            .gql()?
            .ok_or(AppError::NotFound("workspace"))
            .gql()?;
        if db::schedules::count(&state.db, owner).await.gql()? >= MAX_SCHEDULES {
            let message = format!("at most {MAX_SCHEDULES} schedules per user");
            return Err(AppError::RateLimited { message, retry_after_ms: 0 }).gql();
        }
        let options = serde_json::to_value(&request.options).map_err(|e| AppError::Internal(e.to_string())).gql()?;
        let new = db::schedules::NewSchedule {
            owner: owner.clone(),
            workspace_id: request.workspace_id,
            name,
            cron,
            timezone,
            prompt: request.prompt.text(),
            options,
            same_session,
            next_run_at: next,
        };
        Ok(Schedule(db::schedules::create(&state.db, new).await.gql()?))
    }

    /// Turns a schedule off, or on again (from its next occurrence).
    async fn set_schedule_enabled(&self, ctx: &Context<'_>, id: ID, enabled: bool) -> async_graphql::Result<Schedule> {
        let state = state(ctx)?;
        let owner = &viewer(ctx)?.sub;
        let id = parse_id(&id, "id").gql()?;
        let schedule =
            db::schedules::get(&state.db, owner, id).await.gql()?.ok_or(AppError::NotFound("schedule")).gql()?;
        let next = match enabled {
            true => Pattern::parse(&schedule.cron, &schedule.timezone).ok().and_then(|p| p.next_after(Utc::now())),
            false => None,
        };
        db::schedules::set_next(&state.db, id, next).await.gql()?;
        let schedule = db::schedules::get(&state.db, owner, id).await.gql()?;
        Ok(Schedule(schedule.ok_or(AppError::NotFound("schedule")).gql()?))
    }

    /// Deletes a schedule (its executions stay).
    async fn delete_schedule(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<DeletePayload> {
        let parsed = parse_id(&id, "id").gql()?;
        if !db::schedules::delete(&state(ctx)?.db, &viewer(ctx)?.sub, parsed).await.gql()? {
            return Err(AppError::NotFound("schedule")).gql();
        }
        Ok(DeletePayload { deleted_id: id })
    }
}

fn checked_pattern(cron: &str, timezone: &str, min: std::time::Duration) -> AppResult<Pattern> {
    if cron.len() > 200 || timezone.len() > 100 {
        return Err(AppError::bad_input("cron", "`cron` or `timezone` is too long"));
    }
    let pattern = Pattern::parse(cron.trim(), timezone).map_err(|(field, why)| AppError::bad_input(field, why))?;
    pattern.check_interval(min).map_err(|why| AppError::bad_input("cron", why))?;
    Ok(pattern)
}
