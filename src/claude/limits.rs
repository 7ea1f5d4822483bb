//! When a usage or rate limit that stopped a run ends.
//!
//! The CLI says it in two ways. With subscription auth a `rate_limit_event`
//! line carries `rate_limit_info.resetsAt` (Unix seconds) and `status`
//! (`rejected` when the limit was hit). The recorded runs (API-key auth)
//! have no such line; there the only hint is the text of the error result,
//! as the API wrote it: "You've hit your usage limit · resets 5pm",
//! sometimes with a zone: "resets 5:30am (Europe/Berlin)".

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// `resetsAt` of a `rate_limit_event` line that says the limit was hit.
pub fn from_event(payload: &str) -> Option<DateTime<Utc>> {
    let line: Value = serde_json::from_str(payload).ok()?;
    let info = line.get("rate_limit_info")?;
    if info.get("status").and_then(Value::as_str) != Some("rejected") {
        return None;
    }
    let at = info.get("resetsAt")?;
    let seconds = at.as_i64().or_else(|| at.as_f64().map(|f| f as i64))?;
    DateTime::from_timestamp(seconds, 0)
}

/// The next moment after `now` that "resets <time>" in `text` names, in
/// the zone the text gives, else in `zone`.
pub fn from_text(text: &str, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
    let lower = text.to_ascii_lowercase();
    let rest = &text[lower.find("resets ")? + "resets ".len()..];
    let (time, rest) = clock_time(rest)?;
    let zone = rest
        .trim_start()
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .and_then(|(name, _)| name.trim().parse::<Tz>().ok())
        .unwrap_or(zone);
    let today = now.with_timezone(&zone).date_naive();
    [today, today.succ_opt()?].into_iter().find_map(|day| {
        let at = zone.from_local_datetime(&day.and_time(time)).earliest()?.with_timezone(&Utc);
        (at > now).then_some(at)
    })
}

/// "5pm", "5:30 am", "17:00" at the start of `s`, and what follows.
fn clock_time(s: &str) -> Option<(NaiveTime, &str)> {
    let (mut hour, digits, mut rest) = number(s)?;
    if digits > 2 {
        return None;
    }
    let mut minute = None;
    if let Some(after) = rest.strip_prefix(':') {
        let (m, digits, after) = number(after)?;
        if digits != 2 {
            return None;
        }
        (minute, rest) = (Some(m), after);
    }
    let spaced = rest.trim_start();
    match spaced.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some(m @ ("am" | "pm")) => {
            if !(1..=12).contains(&hour) {
                return None;
            }
            hour = hour % 12 + if m == "pm" { 12 } else { 0 };
            rest = &spaced[2..];
        }
        // A bare number is no time of day; "17:45" is.
        _ if minute.is_none() => return None,
        _ => {}
    }
    Some((NaiveTime::from_hms_opt(hour, minute.unwrap_or(0), 0)?, rest))
}

/// The number at the start of `s`, its digits, and what follows.
fn number(s: &str) -> Option<(u32, usize, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    Some((s[..n].parse().ok()?, n, &s[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_recorded_usage_limit_text_names_the_next_such_time() {
        let text = "API Error: Request rejected (429) · You've hit your usage limit · resets 5pm";
        assert_eq!(from_text(text, at("2026-12-01T10:00:00Z"), Tz::UTC), Some(at("2026-12-01T17:00:00Z")));
        // Past 5pm: tomorrow's.
        assert_eq!(from_text(text, at("2026-12-01T18:00:00Z"), Tz::UTC), Some(at("2026-12-02T17:00:00Z")));
        // In the server's zone.
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(from_text(text, at("2026-12-01T10:00:00Z"), berlin), Some(at("2026-12-01T16:00:00Z")));
    }

    #[test]
    fn other_spellings_of_the_reset() {
        let now = at("2026-12-01T10:00:00Z");
        let cases = [
            ("resets 5:30am (Europe/Berlin)", Some("2026-12-02T04:30:00Z")),
            ("resets 12am", Some("2026-12-02T00:00:00Z")),
            ("resets 12pm", Some("2026-12-01T12:00:00Z")),
            ("Resets 17:45", Some("2026-12-01T17:45:00Z")),
            ("resets 5 PM", Some("2026-12-01T17:00:00Z")),
            ("resets soon", None),
            ("resets 5", None),
            ("resets 13pm", None),
            ("resets 25:00", None),
            ("no reset here", None),
        ];
        for (text, want) in cases {
            assert_eq!(from_text(text, now, Tz::UTC), want.map(at), "{text}");
        }
    }

    #[test]
    fn a_rejected_rate_limit_event_gives_its_reset() {
        let event = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1796140800,"rateLimitType":"five_hour"},"uuid":"u","session_id":"s"}"#;
        assert_eq!(from_event(event), DateTime::from_timestamp(1_796_140_800, 0));
        let allowed = event.replace("rejected", "allowed_warning");
        assert_eq!(from_event(&allowed), None);
        assert_eq!(from_event(r#"{"type":"rate_limit_event"}"#), None);
        assert_eq!(from_event("not json"), None);
    }
}
