//! API errors, answered as `metav1.Status` objects so kubectl prints them as a real cluster's
//! (kubectl-contract §10).

use super::validation::Cause;
use crate::resources::ResourceDef;
use crate::store::StoreError;
use serde_json::{json, Value};

/// Everything a request can fail with. `Display` is the Status `message`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Invalid {
        res: &'static ResourceDef,
        name: String,
        causes: Vec<Cause>,
        message: String,
    },
    /// Bad request options (`dryRun`, `fieldManager`, ...): 422 on `<Kind>.meta.k8s.io`.
    #[error("{message}")]
    InvalidOptions {
        kind: &'static str,
        causes: Vec<Cause>,
        message: String,
    },
    #[error("{source}")]
    Store {
        res: &'static ResourceDef,
        #[source]
        source: StoreError,
    },
    #[error("the server could not find the requested resource")]
    NoRoute,
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {0}"
    )]
    UnsupportedMediaType(&'static str),
    #[error("the server has received too large of a request")]
    TooLarge,
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::meta::NotAnObject> for ApiError {
    fn from(e: crate::meta::NotAnObject) -> ApiError {
        ApiError::BadRequest(e.to_string())
    }
}

impl ApiError {
    /// Wraps a store error with the resource it concerns (for Status `details`).
    pub fn store(res: &'static ResourceDef) -> impl FnOnce(StoreError) -> ApiError {
        move |source| ApiError::Store { res, source }
    }

    /// HTTP status code and Status `reason`.
    pub fn code_reason(&self) -> (u16, &'static str) {
        match self {
            ApiError::BadRequest(_) => (400, "BadRequest"),
            ApiError::Invalid { .. } | ApiError::InvalidOptions { .. } => (422, "Invalid"),
            ApiError::Store { source, .. } => match source {
                StoreError::NotFound { .. } | StoreError::NamespaceNotFound(_) => (404, "NotFound"),
                StoreError::AlreadyExists { .. } => (409, "AlreadyExists"),
                StoreError::Conflict { .. } => (409, "Conflict"),
                StoreError::NamespaceTerminating(_) => (403, "Forbidden"),
                StoreError::Expired { .. } => (410, "Expired"),
                StoreError::Persist(_) | StoreError::Corrupt(_) => (500, "InternalError"),
            },
            ApiError::NoRoute => (404, "NotFound"),
            ApiError::UnsupportedMediaType(_) => (415, "UnsupportedMediaType"),
            ApiError::TooLarge => (413, "RequestEntityTooLarge"),
            ApiError::MethodNotAllowed => (405, "MethodNotAllowed"),
            ApiError::Unauthorized => (401, "Unauthorized"),
            ApiError::Forbidden(_) => (403, "Forbidden"),
            ApiError::Internal(_) => (500, "InternalError"),
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let (code, reason) = self.code_reason();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code,
        });
        let details = match self {
            ApiError::Invalid {
                res, name, causes, ..
            } => Some(json!({
                "name": name,
                "group": res.group,
                "kind": res.kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason, "message": c.message, "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            ApiError::InvalidOptions { kind, causes, .. } => Some(json!({
                "group": "meta.k8s.io",
                "kind": kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason, "message": c.message, "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            ApiError::Store { res, source } => match source {
                StoreError::NotFound { name, .. }
                | StoreError::AlreadyExists { name, .. }
                | StoreError::Conflict { name, .. } => {
                    Some(json!({"name": name, "group": res.group, "kind": res.plural}))
                }
                StoreError::NamespaceNotFound(ns) => {
                    Some(json!({"name": ns, "kind": "namespaces"}))
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(mut d) = details {
            // StatusDetails.group is omitempty: the core group leaves it out.
            if d.get("group").is_some_and(|g| g == "") {
                if let Some(m) = d.as_object_mut() {
                    m.remove("group");
                }
            }
            status["details"] = d;
        }
        if reason.is_empty() {
            // metav1.Status.Reason is omitempty.
            if let Some(m) = status.as_object_mut() {
                m.remove("reason");
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::kinds;

    #[test]
    fn not_found_reads_like_kube_apiserver() {
        let err = ApiError::store(kinds::gateways())(StoreError::NotFound {
            resource: kinds::gateways().qualified_plural(),
            name: "nope".into(),
        });
        let s = err.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(
            s["message"],
            "gateways.gateway.networking.k8s.io \"nope\" not found"
        );
        assert_eq!(s["details"]["kind"], "gateways");
    }

    #[test]
    fn missing_namespace_is_a_404_naming_it() {
        let err = ApiError::store(kinds::gateways())(StoreError::NamespaceNotFound("x".into()));
        let s = err.to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["message"], "namespaces \"x\" not found");
    }
}
