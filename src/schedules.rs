//! Fires schedules: every server looks for due ones each second and starts
//! each occurrence through `Executor::start` with the idempotency key
//! `schedule:<id>:<occurrence>`, so however many servers fire it at once,
//! the occurrence makes one execution (the key's primary key decides);
//! then the schedule moves to its next occurrence (a compare-and-set on
//! the one it fired). Occurrences missed while no server ran are not made
//! up: the first one due fires, and the next is counted from now.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use entity::schedule;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    db::{self, schedules::Fired},
    error::AppError,
    executor::{Executor, IfBusy, StartRequest},
};

/// How often due schedules are looked for.
const POLL: Duration = Duration::from_secs(1);
/// Occurrences looked at for the shortest gap between two.
const OCCURRENCES_CHECKED: usize = 1000;

/// A schedule's pattern and zone, checked.
pub struct Pattern {
    cron: Cron,
    zone: Tz,
}

impl Pattern {
    /// Five fields (minute, hour, day of month, month, weekday) or six
    /// (seconds first), read in the IANA zone `timezone`. Errors name the
    /// field at fault.
    pub fn parse(cron: &str, timezone: &str) -> Result<Pattern, (&'static str, String)> {
        let zone =
            Tz::from_str(timezone).map_err(|_| ("timezone", format!("`{timezone}` is not an IANA time zone")))?;
        let cron = parse_cron(cron).map_err(|e| ("cron", format!("`{cron}` is not a cron pattern: {e}")))?;
        Ok(Pattern { cron, zone })
    }

    /// The first occurrence after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        next_occurrence(&self.cron, &after.with_timezone(&self.zone)).map(|at| at.with_timezone(&Utc))
    }

    /// Refuses a pattern that fires more often than every `min` anywhere
    /// in its next occurrences (`* 0 * * * *` is hourly between bursts).
    pub fn check_interval(&self, min: Duration) -> Result<(), String> {
        let mut at = self.next_after(Utc::now()).ok_or("the pattern never fires")?;
        let mut gap = Duration::MAX;
        for _ in 0..OCCURRENCES_CHECKED {
            let Some(next) = self.next_after(at) else { break };
            gap = gap.min((next - at).to_std().unwrap_or_default());
            at = next;
        }
        if gap < min {
            return Err(format!(
                "it fires every {}; at most every {} is allowed",
                humantime::format_duration(gap),
                humantime::format_duration(min)
            ));
        }
        Ok(())
    }
}

/// Starts the due occurrences of every schedule.
pub struct Scheduler {
    pub db: DatabaseConnection,
    pub executor: Executor,
}

impl Scheduler {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.cancelled() => return,
            }
            let due = match db::schedules::due(&self.db, Utc::now()).await {
                Ok(due) => due,
                Err(e) => {
                    warn!(error = %e, "could not read the schedules");
                    continue;
                }
            };
            for schedule in due {
                if let Err(e) = self.fire(schedule).await {
                    warn!(error = %e, "could not record a schedule's occurrence");
                }
            }
        }
    }

    /// Starts one occurrence (unless another server did), and moves the
    /// schedule on.
    async fn fire(&self, schedule: schedule::Model) -> Result<(), db::DbError> {
        let Some(occurrence) = schedule.next_run_at else { return Ok(()) };
        let next = Pattern::parse(&schedule.cron, &schedule.timezone)
            .ok()
            .and_then(|p| p.next_after(Utc::now().max(occurrence)));
        let options: crate::claude::RunOptions = serde_json::from_value(schedule.options.clone()).unwrap_or_default();
        // What the server lets clients grant may have changed since.
        if let Err(why) = self.executor.policy().check_options(&options) {
            let fired = Fired { occurrence, next, started: Err(why), session_id: None };
            db::schedules::advance(&self.db, schedule.id, fired).await?;
            return Ok(());
        }
        let mut request = StartRequest {
            workspace_id: schedule.workspace_id,
            session_id: schedule.session_id.filter(|_| schedule.same_session),
            prompt: crate::attachments::Prompt::Text(schedule.prompt.clone()),
            options,
            metadata: Some(serde_json::json!({ "scheduleId": schedule.id, "occurrence": occurrence })),
            idempotency_key: Some(format!("schedule:{}:{}", schedule.id, occurrence.timestamp())),
            if_busy: IfBusy::Queue,
            fork_session_id: None,
            worktree: None,
            base_ref: None,
        };
        let mut started = self.executor.start(&schedule.owner, request.clone()).await;
        if request.session_id.is_some()
            && matches!(started, Err(AppError::NotFound("session") | AppError::SessionClosed(_)))
        {
            // The session it continued is gone or closed: a new one.
            request.session_id = None;
            request.idempotency_key = request.idempotency_key.map(|k| format!("{k}:new"));
            started = self.executor.start(&schedule.owner, request).await;
        }
        let fired = Fired {
            occurrence,
            next,
            session_id: started.as_ref().ok().filter(|_| schedule.same_session).map(|s| s.session.id),
            started: started.as_ref().map(|s| s.execution.id).map_err(ToString::to_string),
        };
        match &started {
            Ok(s) if !s.replayed => info!(schedule = %schedule.id, execution = %s.execution.id, "a schedule fired"),
            Ok(_) => {}
            Err(e) => warn!(schedule = %schedule.id, error = %e, "a schedule's occurrence started nothing"),
        }
        db::schedules::advance(&self.db, schedule.id, fired).await?;
        Ok(())
    }
}

/// Five fields, or six with seconds first (no year field).
fn parse_cron(pattern: &str) -> Result<Cron, croner::errors::CronError> {
    use croner::parser::{CronParser, Year};
    CronParser::builder().year(Year::Disallowed).build().parse(pattern)
}

fn next_occurrence(cron: &Cron, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
    cron.find_next_occurrence(after, false).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn patterns_are_read_in_their_zone() {
        let weekdays = Pattern::parse("0 9 * * MON-FRI", "Europe/Berlin").unwrap();
        // Tuesday 2026-12-01, 10:00 UTC is 11:00 in Berlin: the next is
        // Wednesday 09:00 Berlin, 08:00 UTC.
        assert_eq!(weekdays.next_after(at("2026-12-01T10:00:00Z")), Some(at("2026-12-02T08:00:00Z")));
        // Friday evening: Monday.
        assert_eq!(weekdays.next_after(at("2026-12-04T18:00:00Z")), Some(at("2026-12-07T08:00:00Z")));
        let seconds = Pattern::parse("*/2 * * * * *", "UTC").unwrap();
        assert_eq!(seconds.next_after(at("2026-12-01T10:00:01Z")), Some(at("2026-12-01T10:00:02Z")));
    }

    #[test]
    fn bad_patterns_and_zones_name_their_field() {
        assert_eq!(Pattern::parse("0 9 * *", "UTC").err().map(|e| e.0), Some("cron"));
        assert_eq!(Pattern::parse("61 * * * *", "UTC").err().map(|e| e.0), Some("cron"));
        assert_eq!(Pattern::parse("0 9 * * * * 2030", "UTC").err().map(|e| e.0), Some("cron"));
        assert_eq!(Pattern::parse("0 9 * * *", "Mars/Olympus").err().map(|e| e.0), Some("timezone"));
    }

    #[test]
    fn too_frequent_patterns_are_refused() {
        let bursts = Pattern::parse("* 0 * * * *", "UTC").unwrap();
        assert!(bursts.check_interval(Duration::from_secs(60)).is_err(), "every second for a minute an hour");
        let every_second = Pattern::parse("* * * * * *", "UTC").unwrap();
        assert!(every_second.check_interval(Duration::from_secs(60)).is_err());
        assert!(every_second.check_interval(Duration::from_secs(1)).is_ok());
        assert!(Pattern::parse("*/5 * * * *", "UTC").unwrap().check_interval(Duration::from_secs(60)).is_ok());
    }
}
