//! `kubectl logs` options over the lines the simulator kept: `--since-time`, `--since`,
//! `--timestamps`, `--tail` and `--limit-bytes`, validated as kube-apiserver validates
//! `PodLogOptions`.

use super::errors::ApiError;
use super::validation;
use super::Query;
use crate::meta;
use std::time::{Duration, SystemTime};

/// The `PodLogOptions` of `kubectl logs` that apply to kept lines (`--since-time`, `--since`,
/// `--timestamps`, `--tail`, `--limit-bytes`), checked as `ValidatePodLogOptions` does.
#[derive(Debug, Default, PartialEq)]
pub struct LogOptions {
    since: Option<SystemTime>,
    since_seconds: Option<u64>,
    timestamps: bool,
    tail: Option<usize>,
    limit_bytes: Option<usize>,
}

impl LogOptions {
    pub fn from_query(q: &Query, name: &str) -> Result<LogOptions, ApiError> {
        let bad =
            |field: &str, v: &str| ApiError::BadRequest(format!("{field}: invalid value {v:?}"));
        let int = |field: &str| -> Result<Option<i64>, ApiError> {
            q.get(field)
                .map(|v| v.parse::<i64>().map_err(|_| bad(field, v)))
                .transpose()
        };
        let since = q
            .get("sinceTime")
            .map(|v| meta::parse_rfc3339(v).ok_or_else(|| bad("sinceTime", v)))
            .transpose()?;
        let since_seconds = int("sinceSeconds")?;
        let tail = int("tailLines")?;
        let limit = int("limitBytes")?;
        // ValidatePodLogOptions (pkg/apis/core/validation), answered as the log REST does:
        // errors.NewInvalid(PodLogOptions, name, errs), all causes at once.
        let mut causes = Vec::new();
        let invalid = |field: &str, v: i64, msg: &str| validation::Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {v}: {msg}"),
        };
        if let Some(n) = tail.filter(|n| *n < 0) {
            causes.push(invalid(
                "tailLines",
                n,
                "must be greater than or equal to 0",
            ));
        }
        if let Some(n) = limit.filter(|n| *n < 1) {
            causes.push(invalid("limitBytes", n, "must be greater than 0"));
        }
        match (since, since_seconds) {
            (Some(_), Some(_)) => causes.push(validation::Cause {
                reason: "FieldValueForbidden",
                field: String::new(),
                message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                    .into(),
            }),
            (None, Some(n)) if n < 1 => {
                causes.push(invalid("sinceSeconds", n, "must be greater than 0"))
            }
            _ => {}
        }
        if !causes.is_empty() {
            return Err(ApiError::InvalidOptions {
                kind: "PodLogOptions",
                message: format!(
                    "PodLogOptions {name:?} is invalid: {}",
                    super::options::aggregate(&causes)
                ),
                causes,
            });
        }
        Ok(LogOptions {
            since,
            since_seconds: since_seconds.map(|n| n as u64),
            timestamps: q.flag("timestamps"),
            tail: tail.map(|n| n as usize),
            limit_bytes: limit.map(|n| n as usize),
        })
    }

    /// The log text: lines written at or after the start, the last `tail` of them, each with
    /// its RFC 3339 timestamp (nanoseconds, as the kubelet writes it) when asked, cut at
    /// `limit_bytes`.
    pub fn render(&self, lines: &[(SystemTime, String)], now: SystemTime) -> String {
        let start = self.since.or_else(|| {
            self.since_seconds
                .and_then(|s| now.checked_sub(Duration::from_secs(s)))
        });
        let kept: Vec<&(SystemTime, String)> = lines
            .iter()
            .filter(|(t, _)| start.is_none_or(|s| *t >= s))
            .collect();
        let from = self.tail.map_or(0, |n| kept.len().saturating_sub(n));
        let mut out = String::new();
        for (t, line) in &kept[from..] {
            if self.timestamps {
                out.push_str(&humantime::format_rfc3339_nanos(*t).to_string());
                out.push(' ');
            }
            out.push_str(line);
            out.push('\n');
        }
        if let Some(n) = self.limit_bytes {
            if out.len() > n {
                let mut cut = n;
                while !out.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.truncate(cut);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn lines() -> Vec<(SystemTime, String)> {
        (0..5)
            .map(|i| (at(1_000 + i), format!("line {i}")))
            .collect()
    }

    #[test]
    fn lines_are_kept_from_the_start_then_tailed_then_cut() {
        let render = |s: &str| {
            LogOptions::from_query(&q(s), "p")
                .unwrap()
                .render(&lines(), at(1_004))
        };
        assert_eq!(render(""), "line 0\nline 1\nline 2\nline 3\nline 4\n");
        assert_eq!(
            render("sinceTime=1970-01-01T00:16:43Z"),
            "line 3\nline 4\n",
            "at or after"
        );
        assert_eq!(render("sinceSeconds=2"), "line 2\nline 3\nline 4\n");
        assert_eq!(render("tailLines=2"), "line 3\nline 4\n");
        assert_eq!(render("tailLines=0"), "");
        assert_eq!(render("sinceSeconds=2&tailLines=1"), "line 4\n");
        assert_eq!(render("limitBytes=8"), "line 0\nl");
        assert_eq!(
            render("timestamps=true&tailLines=1"),
            "1970-01-01T00:16:44.000000000Z line 4\n"
        );
    }

    #[test]
    fn bad_options_are_refused_as_kube_validates_them() {
        let err = |s: &str| LogOptions::from_query(&q(s), "p").unwrap_err().to_string();
        assert!(err("tailLines=-1")
            .contains("tailLines: Invalid value: -1: must be greater than or equal to 0"));
        assert!(err("sinceSeconds=0")
            .contains("sinceSeconds: Invalid value: 0: must be greater than 0"));
        assert!(
            err("limitBytes=0").contains("limitBytes: Invalid value: 0: must be greater than 0")
        );
        assert!(err("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z")
            .contains("at most one of `sinceTime` or `sinceSeconds` may be specified"));
        assert!(err("sinceTime=yesterday").contains("sinceTime"));
    }
}
