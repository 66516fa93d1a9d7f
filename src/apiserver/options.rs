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
        if manager.chars().count() > 128 {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "fieldManager".into(),
                message: "Too long: may not be more than 128 bytes".into(),
            });
        }
        if let Some((i, c)) = manager.char_indices().find(|(_, c)| c.is_control()) {
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
    let mut dry: Vec<String> = q
        .get("dryRun")
        .map(|d| vec![d.to_string()])
        .unwrap_or_default();
    if let Some(body) = dry_run_body {
        dry.extend(body.iter().cloned());
    }
    if dry.iter().any(|d| d != "All") {
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "dryRun".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"All\"",
                go_strings(&dry)
            ),
        });
    }
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
    if causes.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let list = if shown.len() == 1 {
        shown[0].clone()
    } else {
        format!("[{}]", shown.join(", "))
    };
    Err(ApiError::InvalidOptions {
        kind: verb.kind(),
        message: format!("{}.meta.k8s.io \"\" is invalid: {list}", verb.kind()),
        causes,
    })
}

/// The delete's propagation policy, from DeleteOptions (`propagationPolicy`, or the deprecated
/// `orphanDependents`) or the query; Background when unset, as for every kind served here
/// (`ValidateDeleteOptions` for the refusals).
pub fn propagation(q: &Query, opts: &serde_json::Value) -> Result<Propagation, ApiError> {
    let policy = opts
        .get("propagationPolicy")
        .and_then(serde_json::Value::as_str)
        .or_else(|| q.get("propagationPolicy"));
    let orphan = opts
        .get("orphanDependents")
        .and_then(serde_json::Value::as_bool)
        .or_else(|| q.get("orphanDependents").map(|v| v == "true"));
    let invalid = |c: Cause| {
        let message = format!(
            "DeleteOptions.meta.k8s.io \"\" is invalid: {}: {}",
            c.field, c.message
        );
        Err(ApiError::InvalidOptions {
            kind: "DeleteOptions",
            causes: vec![c],
            message,
        })
    };
    match (policy, orphan) {
        (Some(_), Some(o)) => invalid(Cause {
            reason: "FieldValueInvalid",
            field: "orphanDependents".into(),
            message: format!("Invalid value: {o}: Cannot both set OrphanDependents and PropagationPolicy"),
        }),
        (Some("Background"), None) | (None, Some(false)) | (None, None) => Ok(Propagation::Background),
        (Some("Foreground"), None) => Ok(Propagation::Foreground),
        (Some("Orphan"), None) | (None, Some(true)) => Ok(Propagation::Orphan),
        (Some(other), None) => invalid(Cause {
            reason: "FieldValueNotSupported",
            field: "propagationPolicy".into(),
            message: format!(
                "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            ),
        }),
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
        let body = ["All".to_string(), "x".to_string()];
        let e = check(Verb::Delete, &Query::parse(None), Some(&body)).unwrap_err();
        assert_eq!(e.code_reason(), (422, "Invalid"));
        assert!(
            e.to_string().starts_with("DeleteOptions.meta.k8s.io"),
            "{e}"
        );
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
}
