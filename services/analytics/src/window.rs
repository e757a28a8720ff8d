//! A window of placement times, `from` and `to` in the query of the
//! summary and the export: the orders placed at or after `from` and before
//! `to`. A time that is not RFC 3339 is refused before the handler (400
//! `bad_request`); a window that ends before it starts, or one longer than
//! a route allows, here (422 `validation_failed`).

use chrono::{DateTime, Duration, Utc};
use omnisaga_runtime::http::ApiError;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

/// The orders placed in `[from, to)`; an open end is unbounded, and a
/// window open at both ends is every order (placed or not yet known to be).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Window {
    /// Whether it bounds anything: only orders whose placement analytics
    /// received are in a bounded window.
    pub fn is_bounded(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }
}

/// `from` and `to`, both optional (the summary's).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// Only orders placed at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z; a + in an offset is sent as %2B).
    pub from: Option<DateTime<Utc>>,
    /// Only orders placed before this time (RFC 3339); after `from`.
    pub to: Option<DateTime<Utc>>,
}

impl WindowQuery {
    /// The window, or `validation_failed` when it ends before it starts.
    pub fn window(&self) -> Result<Window, ApiError> {
        let window = Window {
            from: self.from,
            to: self.to,
        };
        if let (Some(from), Some(to)) = (window.from, window.to) {
            if to <= from {
                return Err(problem("to", "must be after from"));
            }
        }
        Ok(window)
    }
}

/// `from` and `to`, both required, at most `max` apart (the export's).
pub fn closed(from: DateTime<Utc>, to: DateTime<Utc>, max: Duration) -> Result<Window, ApiError> {
    if to <= from {
        return Err(problem("to", "must be after from"));
    }
    if to - from > max {
        return Err(problem(
            "to",
            &format!("must be at most {} days after from", max.num_days()),
        ));
    }
    Ok(Window {
        from: Some(from),
        to: Some(to),
    })
}

/// `validation_failed` naming `field`'s `problem`, as `details.fields` lists problems.
fn problem(field: &str, problem: &str) -> ApiError {
    ApiError::validation(format!("the window is invalid: {field} {problem}"))
        .with_details(json!({"fields": [{"field": field, "problem": problem}]}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_window_must_end_after_it_starts_and_may_be_open() {
        let q = |from: Option<&str>, to: Option<&str>| WindowQuery {
            from: from.map(at),
            to: to.map(at),
        };
        assert_eq!(q(None, None).window().unwrap(), Window::default());
        assert!(!Window::default().is_bounded());
        assert!(q(Some("2026-12-01T00:00:00Z"), None)
            .window()
            .unwrap()
            .is_bounded());
        let reversed = q(Some("2026-12-02T00:00:00Z"), Some("2026-12-01T00:00:00Z"))
            .window()
            .unwrap_err();
        assert_eq!(
            (reversed.status.as_u16(), reversed.code),
            (422, "validation_failed")
        );
        assert!(q(Some("2026-12-01T00:00:00Z"), Some("2026-12-01T00:00:00Z"))
            .window()
            .is_err());
    }

    #[test]
    fn a_closed_window_is_at_most_its_length() {
        let from = at("2026-12-01T00:00:00Z");
        assert!(closed(from, from + Duration::days(92), Duration::days(92)).is_ok());
        let long = closed(from, from + Duration::days(93), Duration::days(92)).unwrap_err();
        assert_eq!(long.code, "validation_failed");
        assert!(long.message.contains("92 days"), "{}", long.message);
        assert!(closed(from, from, Duration::days(92)).is_err());
    }
}
