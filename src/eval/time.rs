//! Event time: which field holds it and how it is read.
//!
//! Correlation windows run on event time. By default the first of `eventTime`, `@timestamp`,
//! `timestamp`, `time`, `date` that parses wins; `--time-field` names one field instead.
//! Accepted forms: an RFC 3339 string; a date and time without an offset (`2025-01-21
//! 17:49:47.000000000`, as Panther writes `p_event_time`, or with a `T`), taken as UTC; or
//! epoch seconds / milliseconds as a number or a numeric string (values above 10^11 are taken
//! as milliseconds). The caller falls back to arrival time, and keeps an event whose time is
//! more than [`MAX_AHEAD_MS`] ahead of the arrival clock out of correlations.

use serde_json::Value;

use crate::event::Event;
use crate::ir::FieldPath;

/// How far an event time may be ahead of the arrival clock (clock skew between hosts) before
/// it is distrusted and the event kept out of correlations: one hour.
pub const MAX_AHEAD_MS: i64 = 60 * 60 * 1000;

pub const DEFAULT_TIME_FIELDS: &[&str] = &["eventTime", "@timestamp", "timestamp", "time", "date"];

/// Milliseconds since the Unix epoch read from the first of `fields` that parses.
pub fn event_time_ms(event: &Event<'_>, fields: &[FieldPath]) -> Option<i64> {
    fields
        .iter()
        .find_map(|field| event.first(field).and_then(parse_time_ms))
}

/// Parses one time value (see the module doc for the accepted forms).
pub fn parse_time_ms(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => parse_time_text(text),
        Value::Number(number) => number.as_f64().and_then(epoch_ms),
        _ => None,
    }
}

fn parse_time_text(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(parsed) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(parsed.timestamp_millis());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(parsed) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(parsed.and_utc().timestamp_millis());
        }
    }
    text.parse::<f64>().ok().and_then(epoch_ms)
}

fn epoch_ms(number: f64) -> Option<i64> {
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let ms = if number > 1e11 {
        number
    } else {
        number * 1000.0
    };
    if ms > 1e15 {
        return None;
    }
    Some(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms() {
        assert_eq!(
            parse_time_ms(&json!("2023-07-10T11:42:00Z")),
            Some(1_688_989_320_000)
        );
        assert_eq!(
            parse_time_ms(&json!("2023-07-10T13:42:00.5+02:00")),
            Some(1_688_989_320_500)
        );
        assert_eq!(
            parse_time_ms(&json!(1_688_989_320)),
            Some(1_688_989_320_000)
        );
        assert_eq!(
            parse_time_ms(&json!(1_688_989_320_123_i64)),
            Some(1_688_989_320_123)
        );
        assert_eq!(parse_time_ms(&json!("1688989320")), Some(1_688_989_320_000));
        assert_eq!(
            parse_time_ms(&json!("2023-07-10 11:42:00.000000000")),
            Some(1_688_989_320_000)
        );
        assert_eq!(
            parse_time_ms(&json!("2023-07-10T11:42:00.25")),
            Some(1_688_989_320_250)
        );
        assert_eq!(parse_time_ms(&json!("yesterday")), None);
        assert_eq!(parse_time_ms(&json!("2023-07-10")), None);
        assert_eq!(parse_time_ms(&json!(true)), None);
    }

    #[test]
    fn first_field_that_parses_wins() {
        let event = json!({"eventTime": "garbage", "@timestamp": "2023-07-10T11:42:00Z"});
        let fields: Vec<FieldPath> = DEFAULT_TIME_FIELDS
            .iter()
            .map(|f| FieldPath::new(f))
            .collect();
        assert_eq!(
            event_time_ms(&Event::new(&event), &fields),
            Some(1_688_989_320_000)
        );
    }
}
