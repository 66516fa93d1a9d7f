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

#[cfg(test)]
mod tests {
    use super::origin_allowed;

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
