//! `--since`: a moment given as RFC 3339 or as an age (`90s`, `10m`, `2h`, `1d`).

use chrono::{DateTime, Duration, Utc};

/// Parses `value` as an RFC 3339 time or an age before now.
pub fn parse(value: &str) -> Result<DateTime<Utc>, String> {
    parse_at(value, Utc::now())
}

/// [`parse`] with `now` given, for tests.
fn parse_at(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{value:?} is neither an RFC 3339 time nor an age like 10m"))?;
    let age = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => return Err(format!("{value:?}: the unit of an age is s, m, h or d")),
    };
    age.map(|age| now - age)
        .ok_or_else(|| format!("{value:?} is too long ago"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-01-02T03:04:05Z".parse().unwrap()
    }

    #[test]
    fn an_age_counts_back_from_now() {
        assert_eq!(
            parse_at("10m", now()).unwrap(),
            "2026-01-02T02:54:05Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_at("1d", now()).unwrap(),
            "2026-01-01T03:04:05Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn an_rfc3339_time_is_taken_as_it_is() {
        let t = parse_at("2026-01-01T00:00:00+01:00", now()).unwrap();
        assert_eq!(t, "2025-12-31T23:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        assert!(parse_at("yesterday", now()).unwrap_err().contains("RFC 3339"));
        assert!(parse_at("5w", now()).unwrap_err().contains("unit"));
    }
}
