//! An endpoint on its way out, the way clients can see it coming: every
//! answer carries `Deprecation` (RFC 9745: since when, `@` Unix seconds),
//! `Sunset` (RFC 8594: when it stops answering, an HTTP date) and a `Link`
//! to its successor (`rel="successor-version"`); calls are counted
//! (`omnisaga_deprecated_calls_total{route}`) so operators see who still
//! uses it; after the sunset it answers 410 `gone`, naming the successor.
//! docs/api.md lists the endpoints deprecated now.

use std::sync::LazyLock;

use axum::{
    http::{
        header::{HeaderName, HeaderValue, LINK},
        StatusCode,
    },
    response::{IntoResponseParts, ResponseParts},
};
use chrono::{DateTime, Utc};

use crate::{base::metrics, edge::http::ApiError};

static CALLS: LazyLock<metrics::Counters> = LazyLock::new(|| {
    metrics::counter_vec(
        "omnisaga_deprecated_calls_total",
        "Calls to endpoints that are deprecated (Deprecation and Sunset headers), by route",
        &["route"],
    )
});

/// One deprecated endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Deprecation {
    /// Its route, as the metric names it.
    pub route: &'static str,
    /// Deprecated since.
    pub since: DateTime<Utc>,
    /// Gone after.
    pub sunset: DateTime<Utc>,
}

/// The headers of one answer: the deprecation and the successor's path.
pub struct Headers {
    deprecation: Deprecation,
    successor: String,
}

impl Deprecation {
    /// A call at `now` whose successor is `successor` (a path): the headers
    /// for its answer, or 410 `gone` once past the sunset.
    pub fn call(&self, now: DateTime<Utc>, successor: String) -> Result<Headers, ApiError> {
        CALLS.with_label_values(&[self.route]).inc();
        if now > self.sunset {
            return Err(ApiError::new(
                StatusCode::GONE,
                "gone",
                format!(
                    "{} was retired on {}; use {successor}",
                    self.route,
                    self.sunset.format("%Y-%m-%d")
                ),
            ));
        }
        Ok(Headers {
            deprecation: *self,
            successor,
        })
    }

    /// The `Deprecation` header's value: `@` and the Unix seconds (RFC 9745).
    fn deprecation_value(&self) -> String {
        format!("@{}", self.since.timestamp())
    }

    /// The `Sunset` header's value: an HTTP date (RFC 8594).
    fn sunset_value(&self) -> String {
        self.sunset.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
    }

    /// Marks `operation` (its OpenAPI JSON) deprecated, with the headers its
    /// answers carry and the 410 it gives after the sunset; `successor` is
    /// the successor's path template.
    pub fn document(&self, operation: &mut serde_json::Value, successor: &str) {
        use serde_json::json;
        operation["deprecated"] = json!(true);
        let headers = json!({
            "Deprecation": {
                "description": format!("deprecated since {} (RFC 9745)", self.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "schema": {"type": "string", "const": self.deprecation_value()},
            },
            "Sunset": {
                "description": "answers 410 gone after this (RFC 8594)",
                "schema": {"type": "string", "const": self.sunset_value()},
            },
            "Link": {
                "description": format!("<{successor}>; rel=\"successor-version\""),
                "schema": {"type": "string"},
            },
        });
        if let Some(responses) = operation["responses"].as_object_mut() {
            for (status, response) in responses.iter_mut() {
                if status.starts_with('2') {
                    response["headers"] = headers.clone();
                }
            }
            let gone = format!(
                "gone: retired after its sunset ({}); the message names the successor",
                self.sunset.format("%Y-%m-%d")
            );
            responses.insert("410".into(), crate::edge::openapi::error_response("410", &gone));
        }
    }
}

impl IntoResponseParts for Headers {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        let values = [
            (
                HeaderName::from_static("deprecation"),
                self.deprecation.deprecation_value(),
            ),
            (HeaderName::from_static("sunset"), self.deprecation.sunset_value()),
            (LINK, format!("<{}>; rel=\"successor-version\"", self.successor)),
        ];
        for (name, value) in values {
            if let Ok(value) = HeaderValue::from_str(&value) {
                res.headers_mut().insert(name, value);
            }
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse as _;
    use chrono::TimeZone as _;

    use super::*;

    const OLD: Deprecation = Deprecation {
        route: "/v1/old",
        since: DateTime::from_timestamp(1_796_342_400, 0).unwrap(),
        sunset: DateTime::from_timestamp(1_814_399_999, 0).unwrap(),
    };

    #[test]
    fn before_the_sunset_an_answer_says_since_when_until_when_and_what_instead() {
        let now = Utc.with_ymd_and_hms(2027, 1, 15, 12, 0, 0).unwrap();
        let headers = OLD.call(now, "/v1/new/1".into()).unwrap();
        let resp = (headers, "body").into_response();
        let h = resp.headers();
        assert_eq!(h["deprecation"], "@1796342400");
        assert_eq!(h["sunset"], "Wed, 30 Jun 2027 23:59:59 GMT");
        assert_eq!(h["link"], "</v1/new/1>; rel=\"successor-version\"");
    }

    #[test]
    fn after_the_sunset_it_is_gone_and_names_the_successor() {
        let now = Utc.with_ymd_and_hms(2027, 7, 1, 0, 0, 0).unwrap();
        let gone = OLD.call(now, "/v1/new/1".into()).err().expect("gone");
        assert_eq!((gone.status, gone.code), (StatusCode::GONE, "gone"));
        assert!(
            gone.message.contains("2027-06-30") && gone.message.contains("/v1/new/1"),
            "{}",
            gone.message
        );
    }
}
