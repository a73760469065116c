//! Java `DateTimeFormatter` patterns, the subset ES|QL's `DATE_FORMAT` is used with, formatted
//! exactly as Elasticsearch formats them.
//!
//! Elasticsearch builds the formatter with `DateFormatter.forPattern(pattern)` and then
//! `withLocale(locale)`, where the locale is the ES|QL request's `locale` parameter, `Locale.US`
//! when the request gives none (the `Configuration` built by `TransportEsqlQueryAction`), and
//! formats the date in UTC. A rule cannot set the request locale, so the locale here is always
//! `Locale.US`. That matters for one letter: `Y`, the week-based year, whose weeks are
//! localized. For `Locale.US` (CLDR and the JDK's own data agree) a week starts on Sunday and
//! the first week of a year is the one holding 1 January (minimal days 1), so the last days of
//! December can belong to the next week-based year.
//!
//! Only letters whose output does not depend on locale text are accepted: `y`, `u`, `Y` (with
//! 2 or 4 letters), `M`, `d`, `H`, `m`, `s` (1 or 2 letters), and `S` (1 to 9 letters, a
//! truncated fraction). Literals are any non-letter character except the pattern's reserved
//! `[`, `]`, `{`, `}`, `#`, and text in single quotes (`''` is a quote). Everything else (month
//! and day names, zones, optional sections) is refused when the rule loads, with the letter
//! named, so every accepted pattern is formatted exactly.

use chrono::{DateTime, Datelike, Timelike};

/// One element of a parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A pattern letter and how many times it is repeated.
    Field(char, usize),
}

/// A validated pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JavaDatePattern {
    parts: Vec<Part>,
}

impl JavaDatePattern {
    /// Parses `pattern`; the error names the construct that is not supported.
    pub fn parse(pattern: &str) -> Result<JavaDatePattern, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                // A quoted literal; '' is one quote, inside or outside quotes.
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    literal.push('\'');
                    continue;
                }
                loop {
                    match chars.next() {
                        None => return Err("unterminated quote in date pattern".to_string()),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            literal.push('\'');
                        }
                        Some('\'') => break,
                        Some(other) => literal.push(other),
                    }
                }
            } else if c.is_ascii_alphabetic() {
                let mut count = 1;
                while chars.peek() == Some(&c) {
                    chars.next();
                    count += 1;
                }
                let supported = match c {
                    'y' | 'u' | 'Y' => count == 2 || count == 4,
                    'M' | 'd' | 'H' | 'm' | 's' => count <= 2,
                    'S' => count <= 9,
                    _ => false,
                };
                if !supported {
                    return Err(format!(
                        "date pattern letter '{}' (only y, u, Y as 2 or 4 letters, M, d, H, m, s as 1 or 2, and S are exact)",
                        c.to_string().repeat(count)
                    ));
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Field(c, count));
            } else if matches!(c, '[' | ']' | '{' | '}' | '#') {
                return Err(format!(
                    "date pattern character '{c}' (reserved or optional section)"
                ));
            } else {
                literal.push(c);
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(JavaDatePattern { parts })
    }

    /// The date at `epoch_ms`, in UTC, formatted by the pattern; `None` for a date chrono
    /// cannot represent.
    pub fn format(&self, epoch_ms: i64) -> Option<String> {
        let time = DateTime::from_timestamp_millis(epoch_ms)?;
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(letter, count) => {
                    let count = *count;
                    match letter {
                        'y' => year(&mut out, i64::from(year_of_era(time.year())), count),
                        'u' => year(&mut out, i64::from(time.year()), count),
                        'Y' => year(&mut out, week_based_year_us(&time), count),
                        'M' => number(&mut out, time.month(), count),
                        'd' => number(&mut out, time.day(), count),
                        'H' => number(&mut out, time.hour(), count),
                        'm' => number(&mut out, time.minute(), count),
                        's' => number(&mut out, time.second(), count),
                        _ => {
                            // 'S': the first `count` digits of the nanosecond fraction.
                            let nanos = format!("{:09}", time.nanosecond() % 1_000_000_000);
                            out.push_str(&nanos[..count.min(9)]);
                        }
                    }
                }
            }
        }
        Some(out)
    }
}

fn year_of_era(year: i32) -> i32 {
    if year >= 1 { year } else { 1 - year }
}

/// `appendValue(field, 1 or 2)`: at least `count` digits.
fn number(out: &mut String, value: u32, count: usize) {
    out.push_str(&format!("{value:0count$}"));
}

/// Four letters: `appendValue(field, 4, 19, EXCEEDS_PAD)`, zero-padded to 4 digits, with a `+`
/// when the year needs more and a `-` when negative. Two letters: the reduced two-digit form
/// (base 2000), which prints the last two digits.
fn year(out: &mut String, value: i64, count: usize) {
    if count == 2 {
        out.push_str(&format!("{:02}", value.rem_euclid(100)));
    } else if value < 0 {
        out.push_str(&format!("-{:04}", value.unsigned_abs()));
    } else if value > 9999 {
        out.push_str(&format!("+{value}"));
    } else {
        out.push_str(&format!("{value:04}"));
    }
}

/// The week-based year of `Locale.US` (weeks start on Sunday, minimal days in the first week
/// 1), computed as `WeekFields` does: the day's week number from the offset of the year's first
/// week start; week 0 belongs to the previous year, and a week at or past the week that holds
/// the next 1 January belongs to the next year.
fn week_based_year_us<Tz: chrono::TimeZone>(time: &DateTime<Tz>) -> i64 {
    const MINIMAL_DAYS: i64 = 1;
    let year = i64::from(time.year());
    let day_of_year = i64::from(time.ordinal());
    // Localized day of week, 1 = Sunday .. 7 = Saturday.
    let day_of_week = i64::from(time.weekday().num_days_from_sunday()) + 1;
    let offset = start_of_week_offset(day_of_year, day_of_week, MINIMAL_DAYS);
    let week = compute_week(offset, day_of_year);
    if week == 0 {
        return year - 1;
    }
    let days_in_year = if chrono::NaiveDate::from_ymd_opt(time.year(), 12, 31)
        .is_some_and(|last| last.ordinal() == 366)
    {
        366
    } else {
        365
    };
    let new_year_week = compute_week(offset, days_in_year + MINIMAL_DAYS);
    if week >= new_year_week {
        year + 1
    } else {
        year
    }
}

/// Days from the start of the year's first week to `day` 1 of the period.
fn start_of_week_offset(day: i64, day_of_week: i64, minimal_days: i64) -> i64 {
    // The day of the period on which the week holding `day` starts, modulo 7.
    let week_start = (day - day_of_week).rem_euclid(7);
    if week_start + 1 > minimal_days {
        7 - week_start
    } else {
        -week_start
    }
}

fn compute_week(offset: i64, day: i64) -> i64 {
    (7 + offset + (day - 1)).div_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    fn format(pattern: &str, at: &str) -> String {
        let parsed = JavaDatePattern::parse(pattern).unwrap_or_else(|err| panic!("{err}"));
        parsed.format(ms(at)).unwrap_or_default()
    }

    #[test]
    fn the_hunting_pattern_is_week_year_minutes_day() {
        // "YYYY-mm-dd" is the week-based year, the minute and the day of the month.
        assert_eq!(format("YYYY-mm-dd", "2024-08-27T13:45:10Z"), "2024-45-27");
        assert_eq!(format("yyyy-MM-dd", "2024-08-27T13:45:10Z"), "2024-08-27");
    }

    #[test]
    fn week_based_year_follows_locale_us() {
        // 2024-12-29 is a Sunday: its week (Sun 29 .. Sat 4 Jan) holds 1 January 2025, so in
        // Locale.US it is week 1 of 2025. (In ISO weeks it would still be 2024.)
        assert_eq!(format("YYYY", "2024-12-29T00:00:00Z"), "2025");
        assert_eq!(format("YYYY", "2024-12-28T23:59:59Z"), "2024");
        // 1 January always belongs to its own year with minimal days 1 (2027-01-01 is a
        // Friday; ISO would put it in 2026).
        assert_eq!(format("YYYY", "2027-01-01T00:00:00Z"), "2027");
        // 2022-12-31 is a Saturday: the week ends there, so it stays in 2022.
        assert_eq!(format("YYYY", "2022-12-31T12:00:00Z"), "2022");
        // 2023-12-31 is a Sunday: week 1 of 2024.
        assert_eq!(format("YY", "2023-12-31T12:00:00Z"), "24");
    }

    #[test]
    fn numbers_fractions_and_literals() {
        assert_eq!(
            format("d/M/yy H:m:s.SSS", "2024-03-05T07:08:09.123Z"),
            "5/3/24 7:8:9.123"
        );
        assert_eq!(
            format("yyyy-MM-dd'T'HH:mm:ss.S", "2024-03-05T07:08:09.987Z"),
            "2024-03-05T07:08:09.9"
        );
        assert_eq!(format("'it''s' yyyy", "2024-03-05T07:08:09Z"), "it's 2024");
        assert_eq!(format("''HH", "2024-03-05T07:08:09Z"), "'07");
        assert_eq!(format("uuuu", "0099-01-01T00:00:00Z"), "0099");
    }

    #[test]
    fn locale_text_and_sections_are_refused() {
        for pattern in [
            "MMM",
            "EEE",
            "yyyy-MM-dd z",
            "a",
            "[HH]",
            "yyy",
            "'open",
            "ddd",
        ] {
            let err = JavaDatePattern::parse(pattern).err();
            assert!(err.is_some(), "{pattern} should be refused");
        }
    }
}
