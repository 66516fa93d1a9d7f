//! The API's front door: every request but the health checks passes here before routing.
//!
//! Checks, in order:
//! 1. No `Origin` header and a `Host` naming the bound address: 403. A web page can make the
//!    browser send requests to loopback (a "simple" cross-origin POST needs no preflight, and
//!    DNS rebinding gives a page a hostname that resolves to 127.0.0.1). kubectl and the client
//!    libraries never send `Origin`, and send the kubeconfig's host as `Host`. kube-apiserver
//!    has no such check (it relies on authentication alone); the README says so.
//! 2. The bearer token, compared in constant time: 401 with kube-apiserver's Status.
//! 3. The body's media type for POST and PUT: JSON, YAML or protobuf, else 415 with
//!    kube-apiserver's message (`NewUnsupportedMediaTypeError`,
//!    staging/src/k8s.io/apiserver/pkg/endpoints/handlers/negotiation/errors.go). A missing
//!    Content-Type reads as JSON, as kube-apiserver's negotiation does. PATCH types are checked
//!    where patches are decoded.

use super::ApiError;
use http::{header, Method, Request};
use std::net::{IpAddr, SocketAddr};

/// Media types a create or update body may have.
pub const BODY_TYPES: &str =
    "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// Lets `req` through, or says why not.
pub fn admit<B>(
    req: &Request<B>,
    bound: Option<SocketAddr>,
    token: Option<&str>,
) -> Result<(), ApiError> {
    if req.headers().contains_key(header::ORIGIN) {
        return Err(ApiError::Forbidden(
            "requests from web browsers are refused: the request carries an Origin header (agc-sandbox serves kubectl and API clients only)".into(),
        ));
    }
    if let (Some(bound), Some(host)) = (bound, host_of(req)) {
        if !host_allowed(host, bound) {
            return Err(ApiError::Forbidden(format!(
                "the Host {host:?} is not an address this API server listens on ({bound}); use the server address from the kubeconfig"
            )));
        }
    }
    if let Some(token) = token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return Err(ApiError::Unauthorized);
        }
    }
    if matches!(*req.method(), Method::POST | Method::PUT) {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("?"))
            .unwrap_or("");
        if !body_type_allowed(ct) {
            return Err(ApiError::UnsupportedMediaType(BODY_TYPES));
        }
    }
    Ok(())
}

/// The request's Host: the header, or the authority of an absolute-form request line.
fn host_of<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// Whether `host` (`name[:port]`) may address a server bound to `bound`. On loopback only
/// `localhost` and loopback addresses may; on a wildcard or another address (which needs a
/// token anyway) any name may, since the server cannot know every name that reaches it.
pub fn host_allowed(host: &str, bound: SocketAddr) -> bool {
    if !bound.ip().is_loopback() {
        return true;
    }
    let name = strip_port(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

/// Whether a POST/PUT body of Content-Type `ct` can be decoded.
pub fn body_type_allowed(ct: &str) -> bool {
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        media.as_str(),
        "" | "application/json" | "application/yaml" | "application/vnd.kubernetes.protobuf"
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/api/v1/namespaces");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    const BOUND: &str = "127.0.0.1:6443";

    fn check(method: &str, headers: &[(&str, &str)]) -> Result<(), u16> {
        admit(
            &req(method, headers),
            Some(BOUND.parse().unwrap()),
            Some("s3cret"),
        )
        .map_err(|e| e.code_reason().0)
    }

    #[test]
    fn the_token_is_required() {
        let ok = [
            ("host", "127.0.0.1:6443"),
            ("authorization", "Bearer s3cret"),
        ];
        assert_eq!(check("GET", &ok), Ok(()));
        assert_eq!(check("GET", &[("host", "127.0.0.1:6443")]), Err(401));
        assert_eq!(
            check(
                "GET",
                &[("authorization", "Bearer s3cre"), ("host", "localhost")]
            ),
            Err(401)
        );
        assert_eq!(check("GET", &[("authorization", "Basic s3cret")]), Err(401));
    }

    #[test]
    fn browsers_and_rebound_hosts_are_refused() {
        let auth = ("authorization", "Bearer s3cret");
        assert_eq!(
            check("GET", &[auth, ("origin", "https://evil.example")]),
            Err(403)
        );
        assert_eq!(check("POST", &[auth, ("origin", "null")]), Err(403));
        assert_eq!(
            check("GET", &[auth, ("host", "evil.example:6443")]),
            Err(403)
        );
        assert_eq!(check("GET", &[auth, ("host", "localhost:6443")]), Ok(()));
        assert_eq!(check("GET", &[auth, ("host", "[::1]:6443")]), Ok(()));
        assert_eq!(check("GET", &[auth, ("host", "127.0.0.2")]), Ok(()));
        assert!(host_allowed("anything", "0.0.0.0:6443".parse().unwrap()));
    }

    #[test]
    fn bodies_must_be_json_yaml_or_protobuf() {
        let auth = ("authorization", "Bearer s3cret");
        assert_eq!(
            check(
                "POST",
                &[auth, ("content-type", "text/plain;charset=UTF-8")]
            ),
            Err(415)
        );
        assert_eq!(
            check(
                "POST",
                &[auth, ("content-type", "application/x-www-form-urlencoded")]
            ),
            Err(415)
        );
        assert_eq!(
            check("PUT", &[auth, ("content-type", "multipart/form-data")]),
            Err(415)
        );
        assert_eq!(
            check("POST", &[auth, ("content-type", "application/json")]),
            Ok(())
        );
        assert_eq!(
            check("POST", &[auth, ("content-type", "application/yaml")]),
            Ok(())
        );
        assert_eq!(check("POST", &[auth]), Ok(()));
        assert_eq!(
            check(
                "POST",
                &[
                    auth,
                    ("content-type", "application/vnd.kubernetes.protobuf")
                ]
            ),
            Ok(())
        );
    }
}
