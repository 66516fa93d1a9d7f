//! The write options every create, update, patch and delete carries (`dryRun`,
//! `fieldManager`, `fieldValidation`, `force`), checked as kube-apiserver checks them
//! (staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go,
//! `ValidateCreateOptions` and friends): a bad value is a 422 on `CreateOptions.meta.k8s.io`
//! (or Update/Patch/DeleteOptions) and nothing is written.

use super::errors::ApiError;
use super::validation::Cause;
use super::Query;
use crate::store::Propagation;

/// Which request the options belong to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verb {
    Create,
    Update,
    /// `apply`: whether the patch is server-side apply.
    Patch {
        apply: bool,
    },
    Delete,
}

impl Verb {
    fn kind(self) -> &'static str {
        match self {
            Verb::Create => "CreateOptions",
            Verb::Update => "UpdateOptions",
            Verb::Patch { .. } => "PatchOptions",
            Verb::Delete => "DeleteOptions",
        }
    }
}

/// Go's `unicode.IsPrint` (ValidateFieldManager refuses any other rune): letters, marks,
/// numbers, punctuation, symbols and the ASCII space. Rust has no category table, so this is
/// its complement for what matters here: controls, every space but U+0020, the format
/// characters (Cf) and private use (Co); unassigned code points are taken as printable.
fn go_is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let u = c as u32;
    let format = matches!(u, 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    !(c.is_control() || c.is_whitespace() || format || private)
}

/// Go's `%#v` of a `[]string`, as field errors print values.
fn go_strings(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// Checks the options in the query (and, for DELETE, `dry_run_body`: the DeleteOptions'
/// `dryRun`).
pub fn check(verb: Verb, q: &Query, dry_run_body: Option<&[String]>) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    let manager = q.get("fieldManager").unwrap_or("");
    if let Verb::Patch { apply } = verb {
        if apply && manager.is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: "fieldManager".into(),
                message: "Required value: is required for apply patch".into(),
            });
        }
        if !apply && q.get("force").is_some() {
            causes.push(Cause {
                reason: "FieldValueForbidden",
                field: "force".into(),
                message: "Forbidden: may not be specified for non-apply patch".into(),
            });
        }
    }
    if verb != Verb::Delete {
        if manager.len() > 128 {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "fieldManager".into(),
                message: "Too long: may not be more than 128 bytes".into(),
            });
        }
        if let Some((i, c)) = manager.char_indices().find(|(_, c)| !go_is_print(*c)) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: "fieldManager".into(),
                message: format!(
                    "Invalid value: {manager:?}: invalid character U+{:04X} (at position {i})",
                    c as u32
                ),
            });
        }
    }
    let mut dry: Vec<String> = q.get_all("dryRun").to_vec();
    if let Some(body) = dry_run_body {
        dry.extend(body.iter().cloned());
    }
    check_dry_run(&dry, &mut causes);
    if verb != Verb::Delete {
        if let Some(v) = q.get("fieldValidation") {
            if !matches!(v, "" | "Ignore" | "Warn" | "Strict") {
                causes.push(Cause {
                    reason: "FieldValueNotSupported",
                    field: "fieldValidation".into(),
                    message: format!(
                        "Unsupported value: {v:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                    ),
                });
            }
        }
    }
    invalid_options(verb.kind(), causes)
}

/// `dryRun` takes only `All`.
fn check_dry_run(dry: &[String], causes: &mut Vec<Cause>) {
    if dry.iter().any(|d| d != "All") {
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "dryRun".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"All\"",
                go_strings(dry)
            ),
        });
    }
}

/// `Ok` without causes, else the 422 of an options object (`<kind>.meta.k8s.io "" is invalid`).
fn invalid_options(kind: &'static str, causes: Vec<Cause>) -> Result<(), ApiError> {
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::InvalidOptions {
        kind,
        message: format!("{kind}.meta.k8s.io \"\" is invalid: {}", aggregate(&causes)),
        causes,
    })
}

/// The causes as Go's `ErrorList.ToAggregate()` prints them: one alone, several in brackets.
pub(super) fn aggregate(causes: &[Cause]) -> String {
    let shown: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    if shown.len() == 1 {
        shown[0].clone()
    } else {
        format!("[{}]", shown.join(", "))
    }
}

/// `metav1.DeleteOptions`, as DELETE and deletecollection decode them
/// (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/delete.go): from the body when there is
/// one (the query is then not read at all), otherwise from the query.
#[derive(Debug, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    pub dry_run: Option<Vec<String>>,
    pub propagation_policy: Option<String>,
    /// Deprecated, but still honoured: `true` is Orphan, `false` Background.
    pub orphan_dependents: Option<bool>,
    pub preconditions: Option<Preconditions>,
    pub grace_period_seconds: Option<i64>,
}

/// `metav1.Preconditions` (body only: the query has no preconditions).
#[derive(Debug, Default, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Go's `strconv.ParseBool`, which query booleans go through.
fn parse_bool(v: &str) -> Result<bool, ApiError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "strconv.ParseBool: parsing {v:?}: invalid syntax"
        ))),
    }
}

impl DeleteOptions {
    /// Decodes the options of a DELETE. A body that is not DeleteOptions is refused before
    /// anything is deleted. (kube-apiserver passes the decoder's error through unwrapped, which
    /// comes out as a 500; this server answers 400, as for every other undecodable body, so a
    /// client error is never reported as a server fault.)
    pub fn decode(q: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
        if !body.is_empty() {
            let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::BadRequest(format!("couldn't get version/kind; json parse error: {e}"))
            })?;
            if !v.is_object() {
                return Err(ApiError::BadRequest(
                    "couldn't get version/kind; json parse error: the body must be a JSON object"
                        .into(),
                ));
            }
            return serde_json::from_value(v)
                .map_err(|e| ApiError::BadRequest(format!("unable to decode DeleteOptions: {e}")));
        }
        Ok(DeleteOptions {
            dry_run: Some(q.get_all("dryRun").to_vec()).filter(|d| !d.is_empty()),
            propagation_policy: q.get("propagationPolicy").map(str::to_string),
            orphan_dependents: q.get("orphanDependents").map(parse_bool).transpose()?,
            preconditions: None,
            grace_period_seconds: q
                .get("gracePeriodSeconds")
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        ApiError::BadRequest(format!(
                            "strconv.ParseInt: parsing {v:?}: invalid syntax"
                        ))
                    })
                })
                .transpose()?,
        })
    }

    /// `ValidateDeleteOptions`: every problem at once, in its order, as one 422 on
    /// `DeleteOptions.meta.k8s.io`.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut causes = Vec::new();
        if let (Some(_), Some(policy)) = (self.orphan_dependents, &self.propagation_policy) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: "propagationPolicy".into(),
                message: format!(
                    "Invalid value: {policy:?}: orphanDependents and deletionPropagation cannot be both set"
                ),
            });
        }
        if let Some(policy) = &self.propagation_policy {
            if !matches!(policy.as_str(), "Foreground" | "Background" | "Orphan") {
                causes.push(Cause {
                    reason: "FieldValueNotSupported",
                    field: "propagationPolicy".into(),
                    message: format!(
                        "Unsupported value: {policy:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                    ),
                });
            }
        }
        let dry = self.dry_run.clone().unwrap_or_default();
        check_dry_run(&dry, &mut causes);
        invalid_options("DeleteOptions", causes)
    }

    /// `dryRun: ["All"]`.
    pub fn dry_run(&self) -> bool {
        self.dry_run
            .as_deref()
            .is_some_and(|d| d.iter().any(|x| x == "All"))
    }

    /// What happens to dependents (registry/generic/registry/store.go `shouldOrphanDependents`,
    /// `shouldDeleteDependents`): `orphanDependents` overrides the policy; unset is Background,
    /// the default of every kind served here. Call after [`DeleteOptions::validate`].
    pub fn propagation(&self) -> Propagation {
        match (self.orphan_dependents, self.propagation_policy.as_deref()) {
            (Some(true), _) => Propagation::Orphan,
            (Some(false), _) => Propagation::Background,
            (None, Some("Foreground")) => Propagation::Foreground,
            (None, Some("Orphan")) => Propagation::Orphan,
            _ => Propagation::Background,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(verb: Verb, q: &str) -> String {
        check(verb, &Query::parse(Some(q)), None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn options_are_refused_as_kube_apiserver_refuses_them() {
        assert_eq!(
            msg(Verb::Create, "dryRun=bogus"),
            r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"bogus"}: supported values: "All""#
        );
        assert_eq!(
            msg(Verb::Patch { apply: true }, ""),
            r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
        );
        assert_eq!(
            msg(Verb::Patch { apply: false }, "force=true"),
            r#"PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch"#
        );
        assert!(msg(Verb::Update, "fieldValidation=Loose").contains(
            r#"fieldValidation: Unsupported value: "Loose": supported values: "", "Ignore", "Strict", "Warn""#
        ));
        assert!(check(
            Verb::Create,
            &Query::parse(Some("dryRun=All&fieldManager=kubectl")),
            None
        )
        .is_ok());
        assert!(check(
            Verb::Patch { apply: true },
            &Query::parse(Some("fieldManager=kubectl&force=true")),
            None
        )
        .is_ok());
    }

    fn delete_err(q: &str, body: &str) -> ApiError {
        let opts = DeleteOptions::decode(&Query::parse(Some(q)), body.as_bytes());
        match opts {
            Err(e) => e,
            Ok(o) => o.validate().unwrap_err(),
        }
    }

    /// ValidateDeleteOptions's texts, every cause at once; the body wins over the query.
    #[test]
    fn delete_options_as_kube_apiserver() {
        let e = delete_err("", r#"{"dryRun":["All","x"]}"#);
        assert_eq!(e.code_reason(), (422, "Invalid"));
        assert_eq!(
            e.to_string(),
            r#"DeleteOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"All", "x"}: supported values: "All""#
        );
        assert_eq!(
            delete_err(
                "",
                r#"{"orphanDependents":true,"propagationPolicy":"Nope","dryRun":["x"]}"#
            )
            .to_string(),
            r#"DeleteOptions.meta.k8s.io "" is invalid: [propagationPolicy: Invalid value: "Nope": orphanDependents and deletionPropagation cannot be both set, propagationPolicy: Unsupported value: "Nope": supported values: "Foreground", "Background", "Orphan", "nil", dryRun: Unsupported value: []string{"x"}: supported values: "All"]"#
        );
        assert_eq!(
            delete_err("propagationPolicy=Background&orphanDependents=false", "").to_string(),
            r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Background": orphanDependents and deletionPropagation cannot be both set"#
        );
        for bad in [
            "{",
            "5",
            r#"{"dryRun":"All"}"#,
            r#"{"preconditions":{"uid":1}}"#,
        ] {
            assert_eq!(delete_err("", bad).code_reason().0, 400, "{bad}");
        }
        assert_eq!(
            delete_err("orphanDependents=maybe", "").code_reason().0,
            400
        );
        // With a body the query is not read.
        let o = DeleteOptions::decode(
            &Query::parse(Some("dryRun=bogus&propagationPolicy=Orphan")),
            br#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground"}"#,
        )
        .unwrap();
        assert!(o.validate().is_ok());
        assert_eq!(o.propagation(), Propagation::Foreground);
        assert!(!o.dry_run());
        let q = DeleteOptions::decode(&Query::parse(Some("dryRun=All&orphanDependents=t")), b"")
            .unwrap();
        assert!(q.dry_run() && q.propagation() == Propagation::Orphan);
    }
}
