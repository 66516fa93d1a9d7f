//! Pure matching rules of the HTTPRoute `CORS` filter (GEP-1767,
//! `HTTPCORSFilter` in gateway-api `apis/v1/httproute_types.go`). Not yet
//! wired into the routing table or the request path.

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

/// The filter's fields as the spec names them; `max_age` defaults to 5.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsPolicy {
    pub allow_origins: Vec<String>,
    pub allow_credentials: bool,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: u32,
}

/// `Access-Control-Allow-Origin`: `None` (no CORS headers at all) for a
/// missing or disallowed origin; `*` only when allowed by `*` without
/// credentials, otherwise the request's origin echoed.
pub fn allow_origin(p: &CorsPolicy, origin: Option<&str>) -> Option<String> {
    let origin = origin?;
    let hit = p.allow_origins.iter().find(|o| origin_allowed(o, origin))?;
    Some(if hit == "*" && !p.allow_credentials {
        "*".to_owned()
    } else {
        origin.to_owned()
    })
}

/// Headers of the gateway's own 200 answer to a preflight, or `None` when
/// the origin is not allowed. With credentials a `*` in allowMethods or
/// allowHeaders is replaced by the request's values (omitted if absent).
pub fn preflight_headers(
    p: &CorsPolicy,
    origin: Option<&str>,
    req_method: Option<&str>,
    req_headers: Option<&str>,
) -> Option<Vec<(&'static str, String)>> {
    let mut out = vec![("access-control-allow-origin", allow_origin(p, origin)?)];
    let star = |v: &[String]| v.len() == 1 && v[0] == "*";
    let methods = if star(&p.allow_methods) && p.allow_credentials {
        req_method.map(str::to_owned)
    } else if p.allow_methods.is_empty() {
        None
    } else {
        Some(p.allow_methods.join(", "))
    };
    if let Some(m) = methods {
        out.push(("access-control-allow-methods", m));
    }
    let headers = if star(&p.allow_headers) && p.allow_credentials {
        req_headers.map(str::to_owned)
    } else if p.allow_headers.is_empty() {
        None
    } else {
        Some(p.allow_headers.join(", "))
    };
    if let Some(h) = headers {
        out.push(("access-control-allow-headers", h));
    }
    if !p.expose_headers.is_empty() {
        out.push(("access-control-expose-headers", p.expose_headers.join(", ")));
    }
    out.push(("access-control-max-age", p.max_age.max(1).to_string()));
    if p.allow_credentials {
        out.push(("access-control-allow-credentials", "true".to_owned()));
    }
    Some(out)
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
        assert!(h.contains(&("access-control-allow-origin", "https://www.bar.com".into())));
        assert!(h.contains(&("access-control-allow-methods", "GET, OPTIONS".into())));
        assert!(h.contains(&("access-control-max-age", "3600".into())));
        assert!(h.contains(&("access-control-allow-credentials", "true".into())));
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
        assert!(h.contains(&("access-control-allow-methods", "PUT".into())));
        assert!(h.contains(&("access-control-allow-headers", "x-a, x-b".into())));
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
}
