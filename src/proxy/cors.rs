//! Pure rules of the HTTPRoute `CORS` filter (GEP-1767, `HTTPCORSFilter` in
//! gateway-api v1.5.1 `apis/v1/httproute_types.go`; AGC's `how-to-cors-gateway-api`):
//! which origins match, what a preflight is answered, what an actual response gets.

use http::header::{self, HeaderMap, HeaderName};
use http::Method;

pub use crate::routing::CorsPolicy;

/// Whether `origin` (the request's `Origin` header) is allowed by one
/// `allowOrigins` entry. `*` alone allows every origin; otherwise scheme and
/// port must match exactly and a `*` in the host is a greedy match to the
/// left, spanning any number of DNS labels ("`*` will include any number of
/// period `.` characters to the left of its position").
pub fn origin_allowed(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some((p_scheme, p_rest)) = pattern.split_once("://") else {
        return false;
    };
    let Some((o_scheme, o_rest)) = origin.split_once("://") else {
        return false;
    };
    if !p_scheme.eq_ignore_ascii_case(o_scheme) {
        return false;
    }
    let (p_host, p_port) = host_port(p_rest, p_scheme);
    let (o_host, o_port) = host_port(o_rest, o_scheme);
    if p_port != o_port {
        return false;
    }
    match p_host.split_once('*') {
        None => p_host.eq_ignore_ascii_case(o_host),
        Some((before, after)) => {
            o_host.len() >= before.len() + after.len()
                && o_host[..before.len()].eq_ignore_ascii_case(before)
                && o_host[o_host.len() - after.len()..].eq_ignore_ascii_case(after)
        }
    }
}

/// Splits `host[:port]`; a missing port is the scheme's default ("port `80`
/// is assumed for `http` scheme origins, and port `443` ... for `https`").
fn host_port<'a>(rest: &'a str, scheme: &str) -> (&'a str, Option<&'a str>) {
    match rest.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (
            rest,
            match scheme.to_ascii_lowercase().as_str() {
                "http" => Some("80"),
                "https" => Some("443"),
                _ => None,
            },
        ),
    }
}

/// `Access-Control-Allow-Origin`: `None` (no CORS headers at all) for a
/// missing or disallowed origin; `*` only when allowed by `*` without
/// credentials, otherwise the request's origin echoed. An empty
/// `allowOrigins` allows every origin, as the v1.5.1 conformance test
/// `CORSAllowCredentialsBehavior` expects (its filters set only
/// `allowCredentials`, and the origin must come back).
pub fn allow_origin(p: &CorsPolicy, origin: Option<&str>) -> Option<String> {
    let origin = origin?;
    let star = p.allow_origins.is_empty()
        || p.allow_origins.iter().find(|o| origin_allowed(o, origin))? == "*";
    Some(if star && !p.allow_credentials {
        "*".to_owned()
    } else {
        origin.to_owned()
    })
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method` (Fetch
/// standard, "CORS-preflight request").
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// A list header's value. AGC's article shows them joined without spaces
/// (`Access-Control-Allow-Methods: GET,POST,OPTIONS`).
fn list(v: &[String]) -> String {
    v.join(",")
}

/// Headers of the gateway's own 200 answer to a preflight, or `None` when
/// the origin is not allowed (the answer then carries no CORS headers). With
/// credentials a `*` in allowMethods or allowHeaders is replaced by the
/// request's values, and omitted when the request has none (GEP-1767).
pub fn preflight_headers(
    p: &CorsPolicy,
    origin: Option<&str>,
    req_method: Option<&str>,
    req_headers: Option<&str>,
) -> Option<Vec<(HeaderName, String)>> {
    let mut out = vec![(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        allow_origin(p, origin)?,
    )];
    let star = |v: &[String]| v.len() == 1 && v[0] == "*";
    let echo_or_list = |v: &[String], req: Option<&str>| {
        if star(v) && p.allow_credentials {
            req.map(str::to_owned)
        } else if v.is_empty() {
            None
        } else {
            Some(list(v))
        }
    };
    if let Some(m) = echo_or_list(&p.allow_methods, req_method) {
        out.push((header::ACCESS_CONTROL_ALLOW_METHODS, m));
    }
    if let Some(h) = echo_or_list(&p.allow_headers, req_headers) {
        out.push((header::ACCESS_CONTROL_ALLOW_HEADERS, h));
    }
    if !p.expose_headers.is_empty() {
        out.push((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            list(&p.expose_headers),
        ));
    }
    out.push((header::ACCESS_CONTROL_MAX_AGE, p.max_age.max(1).to_string()));
    if p.allow_credentials {
        out.push((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".to_owned()));
    }
    Some(out)
}

/// Headers added to an actual (non-preflight) response from an allowed
/// origin: the origin, credentials and the exposed headers, as AGC's article
/// shows; `None` for a missing or disallowed origin.
pub fn response_headers(p: &CorsPolicy, origin: Option<&str>) -> Option<Vec<(HeaderName, String)>> {
    let mut out = vec![(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        allow_origin(p, origin)?,
    )];
    if p.allow_credentials {
        out.push((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".to_owned()));
    }
    if !p.expose_headers.is_empty() {
        out.push((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            list(&p.expose_headers),
        ));
    }
    Some(out)
}

/// Whether answers depend on the request's `Origin`, so caches must be told
/// (`Vary: Origin`, Fetch standard "CORS protocol and HTTP caches"): every
/// policy but the one that answers `*` to everyone.
pub fn varies_by_origin(p: &CorsPolicy) -> bool {
    p.allow_credentials || !(p.allow_origins.is_empty() || p.allow_origins == ["*"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf1() -> CorsPolicy {
        CorsPolicy {
            allow_origins: vec!["https://www.foo.com".into(), "https://*.bar.com".into()],
            allow_credentials: true,
            allow_methods: vec!["GET".into(), "OPTIONS".into()],
            allow_headers: vec!["x-header-1".into(), "x-header-2".into()],
            expose_headers: vec!["x-header-3".into(), "x-header-4".into()],
            max_age: 3600,
        }
    }

    #[test]
    fn preflight_lists_configured_values() {
        let h = preflight_headers(&conf1(), Some("https://www.bar.com"), Some("GET"), None);
        let h = h.unwrap_or_default();
        assert!(h.contains(&(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            "https://www.bar.com".into()
        )));
        assert!(h.contains(&(header::ACCESS_CONTROL_ALLOW_METHODS, "GET,OPTIONS".into())));
        assert!(h.contains(&(header::ACCESS_CONTROL_MAX_AGE, "3600".into())));
        assert!(h.contains(&(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".into())));
    }

    #[test]
    fn disallowed_or_missing_origin_gets_nothing() {
        assert_eq!(
            preflight_headers(&conf1(), Some("https://foobar.com"), None, None),
            None
        );
        assert_eq!(allow_origin(&conf1(), None), None);
    }

    #[test]
    fn star_origin_echoes_star_only_without_credentials() {
        let mut p = CorsPolicy {
            allow_origins: vec!["*".into()],
            ..Default::default()
        };
        assert_eq!(
            allow_origin(&p, Some("https://a.com")).as_deref(),
            Some("*")
        );
        p.allow_credentials = true;
        assert_eq!(
            allow_origin(&p, Some("https://a.com")).as_deref(),
            Some("https://a.com")
        );
    }

    #[test]
    fn star_methods_with_credentials_echo_the_request() {
        let p = CorsPolicy {
            allow_origins: vec!["https://other.foo.com".into()],
            allow_credentials: true,
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            ..Default::default()
        };
        let h = preflight_headers(
            &p,
            Some("https://other.foo.com"),
            Some("PUT"),
            Some("x-a, x-b"),
        );
        let h = h.unwrap_or_default();
        assert!(h.contains(&(header::ACCESS_CONTROL_ALLOW_METHODS, "PUT".into())));
        assert!(h.contains(&(header::ACCESS_CONTROL_ALLOW_HEADERS, "x-a, x-b".into())));
    }

    #[test]
    fn exact_origin_matches() {
        assert!(origin_allowed("https://www.foo.com", "https://www.foo.com"));
        assert!(!origin_allowed("https://www.foo.com", "https://foobar.com"));
        assert!(!origin_allowed("https://www.foo.com", "http://www.foo.com"));
    }

    #[test]
    fn wildcard_host_spans_labels_to_the_left() {
        assert!(origin_allowed("https://*.bar.com", "https://www.bar.com"));
        assert!(origin_allowed(
            "https://*.bar.com",
            "https://xpto.www.bar.com"
        ));
        assert!(!origin_allowed("https://*.bar.com", "https://bar.com"));
    }

    #[test]
    fn star_alone_allows_any_origin() {
        assert!(origin_allowed("*", "https://foobar.com:12345"));
    }

    #[test]
    fn default_ports_are_assumed() {
        assert!(origin_allowed("https://a.com", "https://a.com:443"));
        assert!(!origin_allowed("https://a.com", "https://a.com:8443"));
    }

    #[test]
    fn empty_allow_origins_allows_any_origin() {
        let mut p = CorsPolicy {
            allow_credentials: true,
            ..Default::default()
        };
        let h = response_headers(&p, Some("https://app.example")).unwrap_or_default();
        assert!(h.contains(&(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            "https://app.example".into()
        )));
        assert!(h.contains(&(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".into())));
        p.allow_credentials = false;
        let h = response_headers(&p, Some("https://app.example")).unwrap_or_default();
        assert_eq!(h, vec![(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".into())]);
        assert!(!varies_by_origin(&p));
    }

    #[test]
    fn actual_responses_get_origin_credentials_and_exposed_headers() {
        let h = response_headers(&conf1(), Some("https://www.foo.com")).unwrap_or_default();
        assert_eq!(
            h,
            vec![
                (
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    "https://www.foo.com".into()
                ),
                (header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true".into()),
                (
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    "x-header-3,x-header-4".into()
                ),
            ]
        );
        assert_eq!(response_headers(&conf1(), Some("https://foobar.com")), None);
        assert!(varies_by_origin(&conf1()));
    }

    #[test]
    fn star_lists_without_credentials_stay_star() {
        let p = CorsPolicy {
            allow_origins: vec!["https://www.foo.com".into()],
            allow_methods: vec!["*".into()],
            max_age: 5,
            ..Default::default()
        };
        let h = preflight_headers(&p, Some("https://www.foo.com"), Some("POST"), None);
        let h = h.unwrap_or_default();
        assert!(h.contains(&(header::ACCESS_CONTROL_ALLOW_METHODS, "*".into())));
        assert!(h.contains(&(header::ACCESS_CONTROL_MAX_AGE, "5".into())));
        assert!(!h
            .iter()
            .any(|(n, _)| n == header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }

    #[test]
    fn preflight_needs_options_origin_and_request_method() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ORIGIN,
            http::HeaderValue::from_static("https://a.com"),
        );
        assert!(!is_preflight(&Method::OPTIONS, &h));
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            http::HeaderValue::from_static("PUT"),
        );
        assert!(is_preflight(&Method::OPTIONS, &h));
        assert!(!is_preflight(&Method::GET, &h));
    }

    proptest::proptest! {
        #[test]
        fn origin_matching_never_panics(p in "\\PC{0,40}", o in "\\PC{0,40}") {
            let _ = origin_allowed(&p, &o);
        }
    }
}
