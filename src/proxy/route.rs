//! Sans-IO HTTPRoute matching and filter helpers.
//!
//! Everything here is a pure function of a request summary ([`RequestParts`])
//! and a read-only [`RouteIndex`] snapshot: no sockets, no tasks, no locks,
//! no clocks, no randomness (callers pass random numbers in). That keeps the
//! Gateway API rules testable one by one, which the tests below do, each
//! quoting the spec sentence it checks (`apis/v1/httproute_types.go`).
//!
//! # Matching
//!
//! [`find`] walks the index's hostname buckets from the most to the least
//! specific (exact host, longest `*.` wildcard suffix, ..., routes without
//! hostnames). Inside a bucket the entries are already sorted by precedence
//! (built once in [`RouteIndex::new`]), so the first entry whose conditions
//! all hold is the answer. The scan borrows from the request and the index
//! and allocates nothing, except when a query value is percent-encoded (it
//! is decoded once, for that comparison).
//!
//! Choices the spec leaves open, made here:
//! * **Hostname precedence is a precedence, not a partition.** A request
//!   whose most specific host bucket has no matching rule falls through to
//!   less specific buckets (the spec ranks rules "from the HTTPRoute with
//!   the largest number of characters in a matching hostname"; linkerd does
//!   the same). Envoy-style virtual hosts would answer 404 instead.
//! * **RegularExpression paths rank below every PathPrefix** (the spec says
//!   their precedence is implementation-specific); regexes tie with each
//!   other and are then ordered by method, headers, query, route age.
//! * **Repeated request headers:** only the first value is compared.
//! * **Query parameters:** the first occurrence of a name decides; names
//!   and values are compared after percent-decoding (`%41` = `A`); `+` is
//!   not treated as a space.
//! * **Paths are compared as received** (no percent-decoding or dot-segment
//!   normalisation), case-sensitively.
//! * **Host:** the port is ignored (IPv6 literals keep their brackets), one
//!   trailing dot is ignored, comparison is ASCII case-insensitive.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::HOST;
use http::{HeaderMap, HeaderName, Method, StatusCode, Uri};

use crate::routing::{
    HeaderMatch, HeaderModifier, HostRank, HttpMatch, IndexEntry, ListenerRuntime, PathMatch,
    PathModifier, QueryMatch, RequestMirror, RequestRedirect, RouteIndex, RouteRuntime,
    RuleRuntime, StringMatch, WeightedBackend,
};

/// What the matcher needs to know about a request, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// Host as received (`Host` header or `:authority`); may carry `:port`,
    /// any case.
    pub host: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    /// The raw query string after `?`, if any.
    pub query: Option<&'a str>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

impl<'a> RequestParts<'a> {
    /// Takes the parts from an `http` request head. The host comes from the
    /// URI authority when present (absolute-form or HTTP/2 `:authority`,
    /// which RFC 9112 §3.2.2 says wins over `Host`), else from `Host`.
    pub fn from_http(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        let host = uri
            .host()
            .or_else(|| headers.get(HOST).and_then(|v| v.to_str().ok()))
            .unwrap_or("");
        RequestParts {
            host,
            path: uri.path(),
            query: uri.query(),
            method,
            headers,
        }
    }
}

/// The winning `(route, rule, match)` for a request.
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'a> {
    pub route: &'a Arc<RouteRuntime>,
    pub rule: &'a RuleRuntime,
    /// Position of `rule` in `route.rules`.
    pub rule_index: usize,
    /// Position of `matched` in `rule.matches`; `None` when the rule has no
    /// matches and the implicit `PathPrefix /` applied.
    pub match_index: Option<usize>,
    /// The match that selected the rule (needed by `ReplacePrefixMatch`).
    pub matched: &'a HttpMatch,
    /// How the route's hostname matched.
    pub host_rank: HostRank,
}

/// Finds the route rule that serves `req` on a listener, or `None`, for
/// which the spec demands 404: "When no rules matching a request have been
/// successfully attached to the parent a request is coming from, a HTTP 404
/// status code MUST be returned."
pub fn find<'a>(index: &'a RouteIndex, req: &RequestParts<'_>) -> Option<RouteMatch<'a>> {
    if index.is_empty() {
        return None;
    }
    let host = normalize_host(req.host);
    for (host_rank, bucket) in index.candidates(&host) {
        for entry in bucket {
            let Some((route, rule_index, rule, match_index, matched)) = resolve(index, entry)
            else {
                continue;
            };
            if request_matches(matched, req) {
                return Some(RouteMatch {
                    route,
                    rule,
                    rule_index,
                    match_index,
                    matched,
                    host_rank,
                });
            }
        }
    }
    None
}

type Resolved<'a> = (
    &'a Arc<RouteRuntime>,
    usize,
    &'a RuleRuntime,
    Option<usize>,
    &'a HttpMatch,
);

fn resolve<'a>(index: &'a RouteIndex, e: &IndexEntry) -> Option<Resolved<'a>> {
    let route = index.routes().get(e.route as usize)?;
    let rule_index = e.rule as usize;
    let rule = route.rules.get(rule_index)?;
    match e.matched {
        Some(i) => {
            let i = i as usize;
            Some((route, rule_index, rule, Some(i), rule.matches.get(i)?))
        }
        None => Some((route, rule_index, rule, None, index.implicit_match())),
    }
}

/// True when every condition of `m` holds ("Multiple match types are ANDed
/// together"). Cheap checks first.
pub fn request_matches(m: &HttpMatch, req: &RequestParts<'_>) -> bool {
    if let Some(method) = &m.method {
        if method != req.method {
            return false;
        }
    }
    path_matches(&m.path, req.path)
        && headers_match(&m.headers, req.headers)
        && query_matches(&m.query, req.query)
}

/// Path condition alone.
pub fn path_matches(pm: &PathMatch, path: &str) -> bool {
    match pm {
        PathMatch::Exact(p) => p == path,
        PathMatch::Prefix(p) => prefix_rest(p, path).is_some(),
        PathMatch::Regex(r) => r.is_full_match(path),
    }
}

/// If `prefix` matches `path` element-wise, the rest of the path after the
/// prefix (empty or starting with `/`).
///
/// "Matches based on a URL path prefix split by `/`. [...] When specified, a
/// trailing `/` is ignored." So `/abc/` behaves as `/abc`, and `/` (which
/// trims to nothing) matches every path.
fn prefix_rest<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    let prefix = prefix.trim_end_matches('/');
    let rest = path.strip_prefix(prefix)?;
    (prefix.is_empty() || rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Header conditions. Names were lower-cased when the [`HeaderName`] was
/// parsed and `HeaderMap` keys are lower-case, so lookup is
/// case-insensitive for free. Only the first value of a repeated header is
/// compared (implementation-specific per spec).
fn headers_match(conds: &[HeaderMatch], headers: &HeaderMap) -> bool {
    conds.iter().enumerate().all(|(i, c)| {
        // "only the first entry with an equivalent name MUST be considered
        // for a match. Subsequent entries [...] MUST be ignored."
        if conds[..i].iter().any(|p| p.name == c.name) {
            return true;
        }
        let Some(v) = headers.get(&c.name) else {
            return false;
        };
        match &c.value {
            StringMatch::Exact(s) => v.as_bytes() == s.as_bytes(),
            StringMatch::Regex(r) => {
                std::str::from_utf8(v.as_bytes()).is_ok_and(|s| r.is_full_match(s))
            }
        }
    })
}

fn query_matches(conds: &[QueryMatch], query: Option<&str>) -> bool {
    conds.iter().enumerate().all(|(i, c)| {
        if conds[..i].iter().any(|p| p.name == c.name) {
            return true;
        }
        let Some(raw) = first_query_value(query, &c.name) else {
            return false;
        };
        match &c.value {
            StringMatch::Exact(s) => pct_decoded_eq(raw, s),
            StringMatch::Regex(r) => r.is_full_match(&pct_decode(raw)),
        }
    })
}

/// The raw value of the first parameter named `name` ("it is *recommended*
/// that implementations should match against the first value of the
/// param"). A parameter without `=` has the empty value.
fn first_query_value<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .find(|(k, _)| pct_decoded_eq(k, name))
        .map(|(_, v)| v)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Iterates the percent-decoded bytes of `raw`; a malformed escape stays
/// literal.
fn pct_bytes(raw: &str) -> impl Iterator<Item = u8> + '_ {
    let b = raw.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let c = *b.get(i)?;
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                i += 3;
                return Some(h << 4 | l);
            }
        }
        i += 1;
        Some(c)
    })
}

/// `decode(raw) == expected`, without allocating.
fn pct_decoded_eq(raw: &str, expected: &str) -> bool {
    if !raw.contains('%') {
        return raw == expected;
    }
    pct_bytes(raw).eq(expected.bytes())
}

/// Percent-decodes, borrowing when there is nothing to decode.
fn pct_decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    let bytes: Vec<u8> = pct_bytes(raw).collect();
    Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
}

// ---------------------------------------------------------------------------
// Hosts and listeners
// ---------------------------------------------------------------------------

/// Strips a `:port` ("Implementations MUST ignore any port value specified
/// in the HTTP Host header while performing a match"). `[v6]:port` keeps
/// the brackets; a bare IPv6 literal (several colons) is left alone.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => host.get(..=i).unwrap_or(host),
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Port stripped, one trailing dot removed, ASCII lower case. Allocates only
/// when the host has upper-case letters.
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let h = strip_port(host.trim());
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    }
}

/// How a hostname pattern (route or listener hostname; `None`, empty or `*`
/// = any) matches a host; `None` when it does not. `host` may carry a port
/// and any case.
///
/// "a match for `*.example.com` would match both `test.example.com`, and
/// `foo.test.example.com`, but not `example.com`."
pub fn hostname_rank(pattern: Option<&str>, host: &str) -> Option<HostRank> {
    let host = strip_port(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    let Some(p) = pattern.map(|p| p.strip_suffix('.').unwrap_or(p)) else {
        return Some(HostRank::Any);
    };
    if p.is_empty() || p == "*" {
        return Some(HostRank::Any);
    }
    if let Some(suffix) = p.strip_prefix("*.") {
        // host = <one or more labels> "." suffix
        let cut = host.len().checked_sub(suffix.len() + 1)?;
        let (head, tail) = (host.get(..cut)?, host.get(cut..)?);
        let ok = !head.is_empty()
            && !head.ends_with('.')
            && tail.starts_with('.')
            && tail[1..].eq_ignore_ascii_case(suffix);
        return ok.then_some(HostRank::Wildcard(suffix.len()));
    }
    p.eq_ignore_ascii_case(host).then_some(HostRank::Exact)
}

/// Picks the listener of a gateway that serves `host` (the SNI for HTTPS,
/// the Host header for HTTP) on spec port `port`: the most specific
/// hostname wins (exact, then the longest wildcard, then no hostname), and
/// the first listener in spec order wins a tie.
pub fn select_listener<'a>(
    listeners: &'a [ListenerRuntime],
    port: u16,
    host: &str,
) -> Option<&'a ListenerRuntime> {
    let mut best: Option<(HostRank, &ListenerRuntime)> = None;
    for l in listeners.iter().filter(|l| l.port == port) {
        let Some(rank) = hostname_rank(l.hostname.as_deref(), host) else {
            continue;
        };
        if best.is_none_or(|(b, _)| rank > b) {
            best = Some((rank, l));
        }
    }
    best.map(|(_, l)| l)
}

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

/// Weighted choice among a rule's backends, given a uniformly random
/// `rng_value`.
///
/// "This is computed as weight/(sum of all weights in this BackendRefs
/// list)". A weight of 0 is never picked; `None` (no backends, or all
/// weights 0) means the proxy must answer 500. An
/// [`crate::routing::BackendTarget::Invalid`] backend *is* returned for its
/// share: the caller answers 500 for it.
pub fn pick_backend(rule: &RuleRuntime, rng_value: u32) -> Option<&WeightedBackend> {
    let total: u64 = rule.backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return None;
    }
    // Multiply-shift maps [0, 2^32) onto [0, total) without the bias of `%`.
    // u128 because total can exceed 2^32 (16 backends of u32::MAX).
    let point = ((u128::from(rng_value) * u128::from(total)) >> 32) as u64;
    let mut acc = 0u64;
    rule.backends.iter().find(|b| {
        acc += u64::from(b.weight);
        point < acc
    })
}

/// Whether this request is mirrored, given a uniformly random `rng_value`.
pub fn should_mirror(mirror: &RequestMirror, rng_value: u32) -> bool {
    if mirror.denominator == 0 || mirror.numerator == 0 {
        return false;
    }
    if mirror.numerator >= mirror.denominator {
        return true;
    }
    let point = (u64::from(rng_value) * u64::from(mirror.denominator)) >> 32;
    point < u64::from(mirror.numerator)
}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

fn well_known_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

/// The `Location` of a `RequestRedirect`.
///
/// * scheme: the filter's, else `request_scheme` (`http`/`https` of the
///   listener).
/// * host: the filter's hostname, else the request host without its port.
/// * port: the filter's; else, if the filter sets a scheme, that scheme's
///   well-known port (80/443); else `listener_port`. It is left out when it
///   is the scheme's default ("Implementations SHOULD NOT add the port
///   number in the 'Location' header" for http:80 and https:443). Pass the
///   port clients reach the listener on (spec port, or spec port plus the
///   simulator's offset if redirects must stay inside the simulator).
/// * path: unchanged, `ReplaceFullPath`, or `ReplacePrefixMatch` of the
///   `matched` prefix (see [`rewrite_path`]).
/// * query: kept, unless a `ReplaceFullPath` value carries its own `?`
///   (Envoy's behaviour, which AGC's data plane resembles).
pub fn redirect_location(
    redirect: &RequestRedirect,
    matched: &PathMatch,
    req: &RequestParts<'_>,
    listener_port: u16,
    request_scheme: &str,
) -> String {
    let scheme = redirect.scheme.as_deref().unwrap_or(request_scheme);
    let port = match (redirect.port, redirect.scheme.as_deref()) {
        (Some(p), _) => p,
        (None, Some(s)) => well_known_port(s).unwrap_or(listener_port),
        (None, None) => listener_port,
    };
    let host = redirect
        .hostname
        .as_deref()
        .unwrap_or_else(|| strip_port(req.host.trim()));
    let path: Cow<'_, str> = match &redirect.path {
        None => Cow::Borrowed(req.path),
        Some(m) => Cow::Owned(rewrite_path(m, matched, req.path)),
    };

    let mut out = String::with_capacity(scheme.len() + host.len() + path.len() + 16);
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host);
    if well_known_port(scheme) != Some(port) {
        out.push(':');
        out.push_str(&port.to_string());
    }
    if !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&path);
    if let Some(q) = req.query.filter(|q| !q.is_empty()) {
        if !path.contains('?') {
            out.push('?');
            out.push_str(q);
        }
    }
    out
}

/// The redirect status: the configured 301/302/303/307/308, or 302 (the
/// spec default) for anything else, so a bad value can never produce a
/// non-redirect response.
pub fn redirect_status(redirect: &RequestRedirect) -> StatusCode {
    match redirect.status_code {
        301 | 302 | 303 | 307 | 308 => {
            StatusCode::from_u16(redirect.status_code).unwrap_or(StatusCode::FOUND)
        }
        _ => StatusCode::FOUND,
    }
}

/// Applies a path modifier (of `URLRewrite` or `RequestRedirect`) to `path`
/// (without query).
///
/// `ReplacePrefixMatch` replaces the element-wise prefix matched by the
/// rule's `PathPrefix` (`matched`), ignoring trailing slashes on both the
/// prefix and the replacement, so `/shop` → `/ecommerce` turns `/shop/a`
/// into `/ecommerce/a` and `/shop` into `/ecommerce`, and `/shop` → `/`
/// turns `/shop/a` into `/a`. The result is never empty and always starts
/// with `/`.
///
/// The controller only accepts `ReplacePrefixMatch` with a single
/// `PathPrefix` match. Defensively: with an `Exact` match the whole path is
/// the prefix; with a regex match, or a path the prefix does not match, the
/// path is returned unchanged.
pub fn rewrite_path(modifier: &PathModifier, matched: &PathMatch, path: &str) -> String {
    match modifier {
        PathModifier::ReplaceFullPath(p) => p.clone(),
        PathModifier::ReplacePrefixMatch(replacement) => {
            let rest = match matched {
                PathMatch::Prefix(prefix) | PathMatch::Exact(prefix) => prefix_rest(prefix, path),
                PathMatch::Regex(_) => None,
            };
            let Some(rest) = rest else {
                return path.to_owned();
            };
            let head = replacement.trim_end_matches('/');
            let mut out = String::with_capacity(head.len() + rest.len() + 1);
            if !head.is_empty() && !head.starts_with('/') {
                // A relative replacement would yield a relative path.
                out.push('/');
            }
            out.push_str(head);
            // `head` has no trailing '/' and `rest` is empty or starts with
            // '/', so the join never doubles a slash.
            out.push_str(rest);
            if out.is_empty() {
                out.push('/');
            }
            out
        }
    }
}

/// Applies a `RequestHeaderModifier`/`ResponseHeaderModifier`: `set`
/// replaces all values, `add` appends a value, `remove` drops all values.
/// Names are [`HeaderName`]s, so all three are case-insensitive. Only the
/// first of several entries naming the same header is used, as the spec
/// requires for `HTTPHeader` lists. Order: set, add, remove (valid
/// configurations name each header in one action only, so order matters
/// only for invalid ones).
pub fn apply_header_modifier(m: &HeaderModifier, headers: &mut HeaderMap) {
    for (i, (name, value)) in m.set.iter().enumerate() {
        if !seen_before(&m.set[..i], name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    for (i, (name, value)) in m.add.iter().enumerate() {
        if !seen_before(&m.add[..i], name) {
            headers.append(name.clone(), value.clone());
        }
    }
    for name in &m.remove {
        headers.remove(name);
    }
}

fn seen_before<V>(earlier: &[(HeaderName, V)], name: &HeaderName) -> bool {
    earlier.iter().any(|(n, _)| n == name)
}

#[cfg(test)]
mod tests {
    //! One test per Gateway API rule; the comment above each quotes the
    //! spec text (`apis/v1/httproute_types.go`) it checks.

    use super::*;
    use crate::routing::{BackendKey, BackendTarget, Filter, UrlRewrite};
    use http::HeaderValue;

    const TS: &str = "2024-01-01T00:00:00Z";

    fn prefix(p: &str) -> HttpMatch {
        HttpMatch {
            path: PathMatch::Prefix(p.into()),
            ..HttpMatch::default()
        }
    }

    fn exact(p: &str) -> HttpMatch {
        HttpMatch {
            path: PathMatch::Exact(p.into()),
            ..HttpMatch::default()
        }
    }

    fn regex(p: &str) -> HttpMatch {
        HttpMatch {
            path: PathMatch::regex(p).unwrap(),
            ..HttpMatch::default()
        }
    }

    fn header(mut m: HttpMatch, name: &str, value: &str) -> HttpMatch {
        m.headers
            .push(HeaderMatch::new(name, StringMatch::Exact(value.into())).unwrap());
        m
    }

    fn query(mut m: HttpMatch, name: &str, value: &str) -> HttpMatch {
        m.query.push(QueryMatch {
            name: name.into(),
            value: StringMatch::Exact(value.into()),
        });
        m
    }

    fn method(mut m: HttpMatch, method: Method) -> HttpMatch {
        m.method = Some(method);
        m
    }

    fn rule(matches: Vec<HttpMatch>) -> RuleRuntime {
        RuleRuntime {
            matches,
            ..RuleRuntime::default()
        }
    }

    fn route_ts(
        name: &str,
        ts: &str,
        hosts: &[&str],
        rules: Vec<RuleRuntime>,
    ) -> Arc<RouteRuntime> {
        let (ns, name) = name.split_once('/').unwrap_or(("ns", name));
        Arc::new(RouteRuntime {
            namespace: ns.into(),
            name: name.into(),
            creation_timestamp: ts.into(),
            hostnames: hosts.iter().map(|h| h.to_string()).collect(),
            rules,
        })
    }

    fn route(name: &str, hosts: &[&str], rules: Vec<RuleRuntime>) -> Arc<RouteRuntime> {
        route_ts(name, TS, hosts, rules)
    }

    fn index(routes: Vec<Arc<RouteRuntime>>) -> RouteIndex {
        RouteIndex::new(routes)
    }

    struct Req {
        host: String,
        path: String,
        query: Option<String>,
        method: Method,
        headers: HeaderMap,
    }

    impl Req {
        fn get(host: &str, target: &str) -> Req {
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                None => (target.to_owned(), None),
            };
            Req {
                host: host.into(),
                path,
                query,
                method: Method::GET,
                headers: HeaderMap::new(),
            }
        }

        fn method(mut self, m: Method) -> Req {
            self.method = m;
            self
        }

        fn header(mut self, name: &str, value: &str) -> Req {
            self.headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
            self
        }

        fn parts(&self) -> RequestParts<'_> {
            RequestParts {
                host: &self.host,
                path: &self.path,
                query: self.query.as_deref(),
                method: &self.method,
                headers: &self.headers,
            }
        }
    }

    /// `"ns/name#rule"` of the winner, or `None` (404).
    fn which(idx: &RouteIndex, req: &Req) -> Option<String> {
        find(idx, &req.parts())
            .map(|m| format!("{}/{}#{}", m.route.namespace, m.route.name, m.rule_index))
    }

    fn hit(name: &str, rule: usize) -> Option<String> {
        let (ns, name) = name.split_once('/').unwrap_or(("ns", name));
        Some(format!("{ns}/{name}#{rule}"))
    }

    // ----- hostnames -------------------------------------------------------

    // "precedence must be given to rules from the HTTPRoute with the largest
    // number of: * Characters in a matching non-wildcard hostname."
    #[test]
    fn exact_hostname_beats_wildcard_and_catch_all() {
        let idx = index(vec![
            route("any", &[], vec![rule(vec![exact("/x")])]),
            route("wild", &["*.example.com"], vec![rule(vec![prefix("/x")])]),
            route("exact", &["foo.example.com"], vec![rule(vec![prefix("/")])]),
        ]);
        // The exact hostname wins even though the others have better paths.
        assert_eq!(
            which(&idx, &Req::get("foo.example.com", "/x")),
            hit("exact", 0)
        );
        assert_eq!(
            which(&idx, &Req::get("bar.example.com", "/x")),
            hit("wild", 0)
        );
        assert_eq!(which(&idx, &Req::get("other.net", "/x")), hit("any", 0));
    }

    // "* Characters in a matching hostname."
    #[test]
    fn longer_wildcard_beats_shorter() {
        let idx = index(vec![
            route("short", &["*.example.com"], vec![rule(vec![])]),
            route("long", &["*.foo.example.com"], vec![rule(vec![])]),
        ]);
        assert_eq!(
            which(&idx, &Req::get("a.foo.example.com", "/")),
            hit("long", 0)
        );
        assert_eq!(
            which(&idx, &Req::get("a.bar.example.com", "/")),
            hit("short", 0)
        );
        // "foo.example.com" is not under "*.foo.example.com".
        assert_eq!(
            which(&idx, &Req::get("foo.example.com", "/")),
            hit("short", 0)
        );
    }

    // "a match for `*.example.com` would match both `test.example.com`, and
    // `foo.test.example.com`, but not `example.com`."
    #[test]
    fn wildcard_needs_at_least_one_label() {
        let idx = index(vec![route("w", &["*.example.com"], vec![rule(vec![])])]);
        assert_eq!(which(&idx, &Req::get("test.example.com", "/")), hit("w", 0));
        assert_eq!(
            which(&idx, &Req::get("foo.test.example.com", "/")),
            hit("w", 0)
        );
        assert_eq!(which(&idx, &Req::get("example.com", "/")), None);
        assert_eq!(which(&idx, &Req::get(".example.com", "/")), None);
        assert_eq!(which(&idx, &Req::get("badexample.com", "/")), None);
    }

    // "Implementations MUST ignore any port value specified in the HTTP Host
    // header while performing a match"
    #[test]
    fn host_port_is_ignored() {
        let idx = index(vec![route("r", &["example.com"], vec![rule(vec![])])]);
        assert_eq!(which(&idx, &Req::get("example.com:8080", "/")), hit("r", 0));
        assert_eq!(which(&idx, &Req::get("example.com:", "/")), hit("r", 0));
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
    }

    // Hostnames are DNS names, which compare case-insensitively (RFC 4343);
    // "Valid values for Hostnames are determined by RFC 1123". A trailing dot
    // (absolute name) names the same host.
    #[test]
    fn host_is_case_insensitive_and_trailing_dot_ignored() {
        let idx = index(vec![
            route("e", &["Example.COM"], vec![rule(vec![])]),
            route("w", &["*.Wild.Example.org"], vec![rule(vec![])]),
        ]);
        assert_eq!(which(&idx, &Req::get("EXAMPLE.com", "/")), hit("e", 0));
        assert_eq!(which(&idx, &Req::get("example.com.", "/")), hit("e", 0));
        assert_eq!(
            which(&idx, &Req::get("A.WILD.example.ORG:443", "/")),
            hit("w", 0)
        );
    }

    // HTTPRouteSpec.hostnames is optional: a route without hostnames matches
    // "HTTPRoutes that have either not specified any hostnames" case, i.e.
    // every request host on the listener.
    #[test]
    fn route_without_hostnames_matches_every_host() {
        let idx = index(vec![route("r", &[], vec![rule(vec![])])]);
        for host in ["a.com", "", "10.0.0.1:80", "[::1]:8080", "x"] {
            assert_eq!(which(&idx, &Req::get(host, "/")), hit("r", 0), "{host}");
        }
        // A bare "*" hostname means the same.
        let idx = index(vec![route("r", &["*"], vec![rule(vec![])])]);
        assert_eq!(which(&idx, &Req::get("anything", "/")), hit("r", 0));
    }

    // Precedence, not partition: "precedence must be given to rules from the
    // HTTPRoute with the largest number of [...] characters" ranks the rules
    // that match; when the most specific host has no matching rule, a less
    // specific one still serves (documented choice, see module docs).
    #[test]
    fn less_specific_host_serves_when_specific_rules_do_not_match() {
        let idx = index(vec![
            route(
                "exact",
                &["foo.example.com"],
                vec![rule(vec![prefix("/api")])],
            ),
            route("wild", &["*.example.com"], vec![rule(vec![prefix("/web")])]),
            route("any", &[], vec![rule(vec![prefix("/")])]),
        ]);
        assert_eq!(
            which(&idx, &Req::get("foo.example.com", "/api/1")),
            hit("exact", 0)
        );
        assert_eq!(
            which(&idx, &Req::get("foo.example.com", "/web")),
            hit("wild", 0)
        );
        assert_eq!(
            which(&idx, &Req::get("foo.example.com", "/other")),
            hit("any", 0)
        );
    }

    // ----- path matching ---------------------------------------------------

    // "an exact path match on `/abc` will only match requests to `/abc`, NOT
    // `/abc/`, `/Abc`, or `/abcd`."
    #[test]
    fn exact_path_match() {
        let idx = index(vec![route("r", &[], vec![rule(vec![exact("/abc")])])]);
        assert_eq!(which(&idx, &Req::get("h", "/abc")), hit("r", 0));
        assert_eq!(which(&idx, &Req::get("h", "/abc?x=1")), hit("r", 0));
        for p in ["/abc/", "/Abc", "/abcd", "/ab", ""] {
            assert_eq!(which(&idx, &Req::get("h", p)), None, "{p}");
        }
    }

    // "the paths `/abc`, `/abc/`, and `/abc/def` would all match the prefix
    // `/abc`, but the path `/abcd` would not."
    #[test]
    fn prefix_matches_whole_path_elements() {
        let idx = index(vec![route("r", &[], vec![rule(vec![prefix("/abc")])])]);
        for p in ["/abc", "/abc/", "/abc/def", "/abc/def/"] {
            assert_eq!(which(&idx, &Req::get("h", p)), hit("r", 0), "{p}");
        }
        for p in ["/abcd", "/ab", "/", "/xabc"] {
            assert_eq!(which(&idx, &Req::get("h", p)), None, "{p}");
        }
    }

    // "When specified, a trailing `/` is ignored."
    #[test]
    fn prefix_trailing_slash_is_ignored() {
        let idx = index(vec![route("r", &[], vec![rule(vec![prefix("/abc/")])])]);
        for p in ["/abc", "/abc/", "/abc/def"] {
            assert_eq!(which(&idx, &Req::get("h", p)), hit("r", 0), "{p}");
        }
        assert_eq!(which(&idx, &Req::get("h", "/abcd")), None);
    }

    // "Matching is case-sensitive and done on a path element by element
    // basis."
    #[test]
    fn prefix_is_case_sensitive() {
        let idx = index(vec![route("r", &[], vec![rule(vec![prefix("/Abc")])])]);
        assert_eq!(which(&idx, &Req::get("h", "/Abc/x")), hit("r", 0));
        assert_eq!(which(&idx, &Req::get("h", "/abc/x")), None);
    }

    // "Matches if the URL path matches the given regular expression with
    // case sensitivity." (The whole path: the regex is anchored.)
    #[test]
    fn regex_path_matches_whole_path_case_sensitively() {
        let idx = index(vec![route(
            "r",
            &[],
            vec![rule(vec![regex(r"/v\d+/.*|/v\d+")])],
        )]);
        assert_eq!(which(&idx, &Req::get("h", "/v1/users")), hit("r", 0));
        assert_eq!(which(&idx, &Req::get("h", "/v22")), hit("r", 0));
        assert_eq!(which(&idx, &Req::get("h", "/api/v1/users")), None);
        assert_eq!(which(&idx, &Req::get("h", "/V1/users")), None);
        assert_eq!(which(&idx, &Req::get("h", "/v1x")), None);
    }

    // "If no matches are specified, the default is a prefix path match on
    // "/", which has the effect of matching every HTTP request."
    #[test]
    fn rule_without_matches_matches_everything() {
        let idx = index(vec![route("r", &[], vec![rule(vec![])])]);
        for p in ["/", "/a/b", "", "*", "no-slash"] {
            let m = find(&idx, &Req::get("h", p).parts()).expect(p);
            assert_eq!(m.match_index, None);
            assert_eq!(m.matched.path, PathMatch::Prefix("/".into()));
        }
    }

    // ----- precedence ------------------------------------------------------

    // "Across all rules specified on applicable Routes, precedence must be
    // given to the match having: * "Exact" path match."
    #[test]
    fn exact_beats_any_prefix() {
        let idx = index(vec![
            route("old", &[], vec![rule(vec![prefix("/foo/bar")])]),
            route_ts(
                "new",
                "2025-01-01T00:00:00Z",
                &[],
                vec![rule(vec![exact("/foo/bar")])],
            ),
        ]);
        assert_eq!(which(&idx, &Req::get("h", "/foo/bar")), hit("new", 0));
        assert_eq!(which(&idx, &Req::get("h", "/foo/bar/baz")), hit("old", 0));
    }

    // "* "Prefix" path match with largest number of characters."
    #[test]
    fn longest_prefix_wins_across_routes() {
        let idx = index(vec![
            route(
                "a",
                &[],
                vec![rule(vec![prefix("/")]), rule(vec![prefix("/foo")])],
            ),
            route_ts(
                "b",
                "2025-01-01T00:00:00Z",
                &[],
                vec![rule(vec![prefix("/foo/bar")])],
            ),
        ]);
        assert_eq!(which(&idx, &Req::get("h", "/foo/bar/x")), hit("b", 0));
        assert_eq!(which(&idx, &Req::get("h", "/foo/baz")), hit("a", 1));
        assert_eq!(which(&idx, &Req::get("h", "/other")), hit("a", 0));
    }

    // "Note: The precedence of RegularExpression path matches are
    // implementation-specific." Here: below every PathPrefix (even "/"),
    // above nothing.
    #[test]
    fn regex_ranks_after_prefix() {
        let idx = index(vec![
            route("re", &[], vec![rule(vec![regex("/foo/.*")])]),
            route_ts(
                "pre",
                "2025-01-01T00:00:00Z",
                &[],
                vec![rule(vec![prefix("/")])],
            ),
        ]);
        assert_eq!(which(&idx, &Req::get("h", "/foo/x")), hit("pre", 0));
        let idx = index(vec![route("re", &[], vec![rule(vec![regex("/foo/.*")])])]);
        assert_eq!(which(&idx, &Req::get("h", "/foo/x")), hit("re", 0));
    }

    // "* Method match." (ranks above header and query counts)
    #[test]
    fn method_match_beats_header_matches() {
        let idx = index(vec![
            route(
                "hdr",
                &[],
                vec![rule(vec![header(header(prefix("/"), "a", "1"), "b", "2")])],
            ),
            route_ts(
                "meth",
                "2025-01-01T00:00:00Z",
                &[],
                vec![rule(vec![method(prefix("/"), Method::POST)])],
            ),
        ]);
        let req = Req::get("h", "/")
            .method(Method::POST)
            .header("a", "1")
            .header("b", "2");
        assert_eq!(which(&idx, &req), hit("meth", 0));
        let req = Req::get("h", "/").header("a", "1").header("b", "2");
        assert_eq!(which(&idx, &req), hit("hdr", 0));
    }

    // "* Largest number of header matches."
    #[test]
    fn most_header_matches_wins() {
        let idx = index(vec![
            route("one", &[], vec![rule(vec![header(prefix("/"), "a", "1")])]),
            route_ts(
                "two",
                "2025-01-01T00:00:00Z",
                &[],
                vec![rule(vec![header(header(prefix("/"), "a", "1"), "b", "2")])],
            ),
        ]);
        let both = Req::get("h", "/").header("a", "1").header("b", "2");
        assert_eq!(which(&idx, &both), hit("two", 0));
        assert_eq!(
            which(&idx, &Req::get("h", "/").header("a", "1")),
            hit("one", 0)
        );
    }

    // "* Largest number of query param matches."
    #[test]
    fn most_query_matches_wins() {
        let idx = index(vec![
            route("hdr", &[], vec![rule(vec![query(prefix("/"), "a", "1")])]),
            route_ts(
                "two",
                "2025-01-01T00:00:00Z",
                &[],
                vec![rule(vec![query(query(prefix("/"), "a", "1"), "b", "2")])],
            ),
        ]);
        assert_eq!(which(&idx, &Req::get("h", "/?a=1&b=2")), hit("two", 0));
        assert_eq!(which(&idx, &Req::get("h", "/?a=1")), hit("hdr", 0));
    }

    // "If ties still exist across multiple Routes, matching precedence MUST be
    // determined in order of the following criteria, continuing on ties:
    // * The oldest Route based on creation timestamp."
    #[test]
    fn oldest_route_wins_a_tie() {
        let idx = index(vec![
            route_ts(
                "a-new",
                "2024-06-01T00:00:00Z",
                &[],
                vec![rule(vec![prefix("/x")])],
            ),
            route_ts(
                "z-old",
                "2024-01-01T00:00:00Z",
                &[],
                vec![rule(vec![prefix("/x")])],
            ),
        ]);
        assert_eq!(which(&idx, &Req::get("h", "/x")), hit("z-old", 0));
    }

    // "* The Route appearing first in alphabetical order by
    // "{namespace}/{name}"."
    #[test]
    fn alphabetical_namespace_name_breaks_remaining_ties() {
        let idx = index(vec![
            route("b/r", &[], vec![rule(vec![prefix("/x")])]),
            route("a/z", &[], vec![rule(vec![prefix("/x")])]),
        ]);
        assert_eq!(which(&idx, &Req::get("h", "/x")), hit("a/z", 0));
        // The joined string decides: "a-b/x" < "a/x" because '-' < '/'.
        let idx = index(vec![
            route("a/x", &[], vec![rule(vec![prefix("/x")])]),
            route("a-b/x", &[], vec![rule(vec![prefix("/x")])]),
        ]);
        assert_eq!(which(&idx, &Req::get("h", "/x")), hit("a-b/x", 0));
    }

    // "If ties still exist within an HTTPRoute, matching precedence MUST be
    // granted to the FIRST matching rule (in list order) with a match meeting
    // the above criteria."
    #[test]
    fn first_rule_in_list_wins_within_a_route() {
        let idx = index(vec![route(
            "r",
            &[],
            vec![
                rule(vec![prefix("/other")]),
                rule(vec![prefix("/x")]),
                rule(vec![prefix("/x")]),
            ],
        )]);
        assert_eq!(which(&idx, &Req::get("h", "/x")), hit("r", 1));
        // A later rule with a *better* match still wins: precedence first.
        let idx = index(vec![route(
            "r",
            &[],
            vec![rule(vec![prefix("/")]), rule(vec![exact("/x")])],
        )]);
        assert_eq!(which(&idx, &Req::get("h", "/x")), hit("r", 1));
    }

    // ----- match semantics -------------------------------------------------

    // "Multiple match types are ANDed together, i.e. the match will evaluate
    // to true only if all conditions are satisfied."
    #[test]
    fn conditions_of_one_match_are_anded() {
        let m = method(
            query(header(prefix("/foo"), "version", "v1"), "q", "1"),
            Method::GET,
        );
        let idx = index(vec![route("r", &[], vec![rule(vec![m])])]);
        let ok = Req::get("h", "/foo?q=1").header("version", "v1");
        assert_eq!(which(&idx, &ok), hit("r", 0));
        assert_eq!(which(&idx, &Req::get("h", "/foo?q=1")), None);
        assert_eq!(
            which(&idx, &Req::get("h", "/foo").header("version", "v1")),
            None
        );
        assert_eq!(
            which(&idx, &Req::get("h", "/bar?q=1").header("version", "v1")),
            None
        );
        let post = Req::get("h", "/foo?q=1")
            .header("version", "v1")
            .method(Method::POST);
        assert_eq!(which(&idx, &post), None);
    }

    // "Each match is independent, i.e. this rule will be matched if **any**
    // one of the matches is satisfied." (the spec's own example)
    #[test]
    fn matches_of_one_rule_are_ored() {
        let idx = index(vec![route(
            "r",
            &[],
            vec![rule(vec![
                header(prefix("/foo"), "version", "v2"),
                prefix("/v2/foo"),
            ])],
        )]);
        let m = find(&idx, &Req::get("h", "/foo").header("version", "v2").parts()).unwrap();
        assert_eq!(m.match_index, Some(0));
        let m = find(&idx, &Req::get("h", "/v2/foo").parts()).unwrap();
        assert_eq!(m.match_index, Some(1));
        assert_eq!(which(&idx, &Req::get("h", "/foo")), None);
    }

    // "Name matching MUST be case-insensitive."
    #[test]
    fn header_names_are_case_insensitive() {
        let idx = index(vec![route(
            "r",
            &[],
            vec![rule(vec![header(prefix("/"), "X-Version", "v1")])],
        )]);
        assert_eq!(
            which(&idx, &Req::get("h", "/").header("x-version", "v1")),
            hit("r", 0)
        );
        assert_eq!(
            which(&idx, &Req::get("h", "/").header("X-VERSION", "v1")),
            hit("r", 0)
        );
    }

    // HeaderMatchType "Exact" (Core) compares the value exactly, so case
    // matters; "RegularExpression" matches the whole value.
    #[test]
    fn header_values_exact_case_sensitive_and_regex() {
        let idx = index(vec![route(
            "r",
            &[],
            vec![rule(vec![header(prefix("/"), "v", "Blue")])],
        )]);
        assert_eq!(
            which(&idx, &Req::get("h", "/").header("v", "Blue")),
            hit("r", 0)
        );
        assert_eq!(which(&idx, &Req::get("h", "/").header("v", "blue")), None);
        assert_eq!(which(&idx, &Req::get("h", "/").header("v", "Blue ")), None);
        let mut m = prefix("/");
        m.headers.push(
            HeaderMatch::new(
                "user-agent",
                StringMatch::Regex(crate::routing::AnchoredRegex::new(".*Mobile.*").unwrap()),
            )
            .unwrap(),
        );
        let idx = index(vec![route("r", &[], vec![rule(vec![m])])]);
        assert_eq!(
            which(&idx, &Req::get("h", "/").header("user-agent", "X Mobile Y")),
            hit("r", 0)
        );
        assert_eq!(
            which(&idx, &Req::get("h", "/").header("user-agent", "mobile")),
            None
        );
    }

    // "If multiple entries specify equivalent header names, only the first
    // entry with an equivalent name MUST be considered for a match.
    // Subsequent entries with an equivalent header name MUST be ignored."
    #[test]
    fn duplicate_header_conditions_first_wins() {
        let m = header(header(prefix("/"), "Foo", "1"), "foo", "2");
        assert_eq!(m.precedence().headers, 1);
        let idx = index(vec![route("r", &[], vec![rule(vec![m])])]);
        assert_eq!(
            which(&idx, &Req::get("h", "/").header("foo", "1")),
            hit("r", 0)
        );
        assert_eq!(which(&idx, &Req::get("h", "/").header("foo", "2")), None);
    }

    // "When a header is repeated in an HTTP request, it is
    // implementation-specific behavior as to how this is represented." Here:
    // the first value is compared.
    #[test]
    fn repeated_request_header_uses_first_value() {
        let idx = index(vec![route(
            "r",
            &[],
            vec![rule(vec![header(prefix("/"), "v", "1")])],
        )]);
        assert_eq!(
            which(&idx, &Req::get("h", "/").header("v", "1").header("v", "2")),
            hit("r", 0)
        );
        assert_eq!(
            which(&idx, &Req::get("h", "/").header("v", "2").header("v", "1")),
            None
        );
    }

    // "Name is the name of the HTTP query param to be matched. This must be an
    // exact string match." Values: QueryParamMatchType "Exact".
    #[test]
    fn query_names_and_values_exact() {
        let idx = index(vec![route(
            "r",
            &[],
            vec![rule(vec![query(prefix("/"), "animal", "whale")])],
        )]);
        assert_eq!(which(&idx, &Req::get("h", "/?animal=whale")), hit("r", 0));
        assert_eq!(
            which(&idx, &Req::get("h", "/?x=1&animal=whale&y")),
            hit("r", 0)
        );
        assert_eq!(which(&idx, &Req::get("h", "/?Animal=whale")), None);
        assert_eq!(which(&idx, &Req::get("h", "/?animal=Whale")), None);
        assert_eq!(which(&idx, &Req::get("h", "/?animal=whales")), None);
        assert_eq!(which(&idx, &Req::get("h", "/?animal")), None);
        assert_eq!(which(&idx, &Req::get("h", "/")), None);
        // Percent-encoding is decoded before comparing.
        assert_eq!(
            which(&idx, &Req::get("h", "/?anim%61l=wh%61le")),
            hit("r", 0)
        );
    }

    // "If a query param is repeated in an HTTP request, [...] it is
    // *recommended* that implementations should match against the first
    // value of the param"
    #[test]
    fn repeated_query_param_uses_first_value() {
        let idx = index(vec![route(
            "r",
            &[],
            vec![rule(vec![query(prefix("/"), "a", "1")])],
        )]);
        assert_eq!(which(&idx, &Req::get("h", "/?a=1&a=2")), hit("r", 0));
        assert_eq!(which(&idx, &Req::get("h", "/?a=2&a=1")), None);
    }

    // "If multiple entries specify equivalent query param names, only the
    // first entry with an equivalent name MUST be considered for a match."
    #[test]
    fn duplicate_query_conditions_first_wins() {
        let m = query(query(prefix("/"), "a", "1"), "a", "2");
        assert_eq!(m.precedence().query, 1);
        let idx = index(vec![route("r", &[], vec![rule(vec![m])])]);
        assert_eq!(which(&idx, &Req::get("h", "/?a=1")), hit("r", 0));
        assert_eq!(which(&idx, &Req::get("h", "/?a=2")), None);
    }

    // "When specified, this route will be matched only if the request has the
    // specified method."
    #[test]
    fn method_match() {
        let idx = index(vec![route(
            "r",
            &[],
            vec![rule(vec![method(prefix("/"), Method::PUT)])],
        )]);
        assert_eq!(
            which(&idx, &Req::get("h", "/").method(Method::PUT)),
            hit("r", 0)
        );
        assert_eq!(which(&idx, &Req::get("h", "/")), None);
    }

    // "When no rules matching a request have been successfully attached to
    // the parent a request is coming from, a HTTP 404 status code MUST be
    // returned." (find → None)
    #[test]
    fn no_match_is_none() {
        assert!(find(&RouteIndex::default(), &Req::get("h", "/").parts()).is_none());
        let idx = index(vec![route("r", &["a.com"], vec![rule(vec![prefix("/a")])])]);
        assert_eq!(which(&idx, &Req::get("b.com", "/a")), None);
        assert_eq!(which(&idx, &Req::get("a.com", "/b")), None);
    }

    // No request input may panic the matcher.
    #[test]
    fn hostile_inputs_do_not_panic() {
        let idx = index(vec![
            route(
                "w",
                &["*.é.com", "*.example.com"],
                vec![rule(vec![query(header(prefix("/é"), "h", "v"), "q", "é")])],
            ),
            route("e", &["ex.com"], vec![rule(vec![regex("/.*")])]),
            route("a", &[], vec![rule(vec![exact("/")])]),
        ]);
        let hosts = [
            "",
            ".",
            "..",
            ":",
            "::::",
            "[",
            "]",
            "[::1",
            "é",
            "a.é.com",
            "ÉX.com:80",
            "*.example.com",
            "a..example.com",
        ];
        let paths = [
            "",
            "/",
            "é",
            "/é/x",
            "/%",
            "/%%2",
            "*",
            "?",
            "/?",
            "/?&&=&=x&q=%e9&q=%",
            "/?q=%C3%A9",
        ];
        for h in hosts {
            for p in paths {
                let _ = find(&idx, &Req::get(h, p).header("h", "v").parts());
                let _ = hostname_rank(Some("*.é.com"), h);
                let _ = hostname_rank(Some("*."), h);
            }
        }
        // Decoded multi-byte UTF-8 query value matches its literal form.
        assert_eq!(
            which(
                &idx,
                &Req::get("a.example.com", "/é?q=%C3%A9").header("h", "v")
            ),
            hit("w", 0)
        );
    }

    // ----- listeners -------------------------------------------------------

    #[test]
    fn select_listener_prefers_most_specific_hostname() {
        use crate::routing::ListenerProtocol;
        let l = |name: &str, port: u16, host: Option<&str>| ListenerRuntime {
            name: name.into(),
            port,
            protocol: ListenerProtocol::Https,
            hostname: host.map(Into::into),
            tls: None,
            routes: RouteIndex::default(),
        };
        let ls = vec![
            l("any", 443, None),
            l("wild", 443, Some("*.contoso.com")),
            l("exact", 443, Some("www.contoso.com")),
            l("http", 80, None),
        ];
        let pick = |port, host| select_listener(&ls, port, host).map(|l| l.name.as_str());
        assert_eq!(pick(443, "www.contoso.com"), Some("exact"));
        assert_eq!(pick(443, "WWW.contoso.com:443"), Some("exact"));
        assert_eq!(pick(443, "api.contoso.com"), Some("wild"));
        assert_eq!(pick(443, "contoso.com"), Some("any"));
        assert_eq!(pick(80, "www.contoso.com"), Some("http"));
        assert_eq!(pick(8080, "www.contoso.com"), None);
    }

    #[test]
    fn request_parts_prefers_uri_authority_over_host_header() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("header.example:81"));
        let m = Method::GET;
        let uri: Uri = "/p?q=1".parse().unwrap();
        let r = RequestParts::from_http(&m, &uri, &headers);
        assert_eq!(
            (r.host, r.path, r.query),
            ("header.example:81", "/p", Some("q=1"))
        );
        let uri: Uri = "http://authority.example:8080/p".parse().unwrap();
        let r = RequestParts::from_http(&m, &uri, &headers);
        assert_eq!(r.host, "authority.example");
    }

    // ----- backends --------------------------------------------------------

    fn weighted(weights: &[u32]) -> RuleRuntime {
        RuleRuntime {
            backends: weights
                .iter()
                .enumerate()
                .map(|(i, &w)| WeightedBackend {
                    weight: w,
                    target: BackendTarget::Service(BackendKey {
                        namespace: "ns".into(),
                        service: format!("b{i}"),
                        port: 80,
                    }),
                    filters: vec![],
                })
                .collect(),
            ..RuleRuntime::default()
        }
    }

    fn picked(rule: &RuleRuntime, rng: u32) -> Option<String> {
        pick_backend(rule, rng).map(|b| match &b.target {
            BackendTarget::Service(k) => k.service.clone(),
            BackendTarget::Invalid { reason } => reason.clone(),
        })
    }

    // "This is computed as weight/(sum of all weights in this BackendRefs
    // list)." Sweeping the rng range evenly must reproduce the proportions.
    #[test]
    fn weighted_choice_is_proportional() {
        let rule = weighted(&[75, 25]);
        let (mut a, mut b) = (0u32, 0u32);
        let steps = 10_000u32;
        for i in 0..steps {
            let rng = (u64::from(i) * (1u64 << 32) / u64::from(steps)) as u32;
            match picked(&rule, rng).as_deref() {
                Some("b0") => a += 1,
                Some("b1") => b += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((a, b), (7_500, 2_500));
        assert_eq!(picked(&rule, 0).as_deref(), Some("b0"));
        assert_eq!(picked(&rule, u32::MAX).as_deref(), Some("b1"));
        // Huge weights do not overflow.
        let big = weighted(&[u32::MAX; 16]);
        assert_eq!(picked(&big, u32::MAX).as_deref(), Some("b15"));
    }

    // "If weight is set to 0, no traffic should be forwarded for this entry."
    // With every weight 0 (or no backendRefs) nothing can be chosen: the
    // proxy answers 500.
    #[test]
    fn zero_weight_is_never_picked() {
        let rule = weighted(&[0, 1, 0]);
        for rng in [0, 1, u32::MAX / 2, u32::MAX] {
            assert_eq!(picked(&rule, rng).as_deref(), Some("b1"));
        }
        assert_eq!(picked(&weighted(&[0, 0]), 123), None);
        assert_eq!(picked(&weighted(&[]), 123), None);
    }

    // "If multiple backends are specified, and some are invalid, the
    // proportion of requests that would otherwise have been routed to an
    // invalid backend MUST receive a 500 status code."
    #[test]
    fn invalid_backend_keeps_its_share() {
        let mut rule = weighted(&[1, 1]);
        rule.backends[1].target = BackendTarget::Invalid {
            reason: "BackendNotFound".into(),
        };
        assert_eq!(picked(&rule, 0).as_deref(), Some("b0"));
        assert_eq!(picked(&rule, u32::MAX).as_deref(), Some("BackendNotFound"));
    }

    // RequestMirror: "Percent represents the percentage of requests that
    // should be mirrored to BackendRef." / "If neither field is specified,
    // 100% of requests will be mirrored."
    #[test]
    fn mirror_fraction() {
        let m = |n, d| RequestMirror {
            target: BackendTarget::Invalid {
                reason: String::new(),
            },
            numerator: n,
            denominator: d,
        };
        assert!(should_mirror(&m(1, 1), 0) && should_mirror(&m(1, 1), u32::MAX));
        assert!(!should_mirror(&m(0, 100), 0));
        assert!(!should_mirror(&m(5, 0), 0));
        let hits = (0..100u32)
            .filter(|i| should_mirror(&m(25, 100), (u64::from(*i) * (1 << 32) / 100) as u32))
            .count();
        assert_eq!(hits, 25);
    }

    // ----- redirects -------------------------------------------------------

    fn redirect(f: impl FnOnce(&mut RequestRedirect)) -> RequestRedirect {
        let mut r = RequestRedirect::default();
        f(&mut r);
        r
    }

    fn loc(
        r: &RequestRedirect,
        matched: &PathMatch,
        host: &str,
        target: &str,
        port: u16,
        scheme: &str,
    ) -> String {
        let req = Req::get(host, target);
        redirect_location(r, matched, &req.parts(), port, scheme)
    }

    // "If redirect scheme is not-empty, the redirect port MUST be the
    // well-known port associated with the redirect scheme." and "SHOULD NOT
    // add the port number [...] HTTPS [...] and use port 443."
    #[test]
    fn scheme_redirect_uses_well_known_port() {
        let r = redirect(|r| {
            r.scheme = Some("https".into());
            r.status_code = 301;
        });
        let any = PathMatch::Prefix("/".into());
        assert_eq!(
            loc(&r, &any, "example.com", "/a?b=c", 80, "http"),
            "https://example.com/a?b=c"
        );
        // The request's own port is dropped, not carried over.
        assert_eq!(
            loc(&r, &any, "example.com:8080", "/a", 8080, "http"),
            "https://example.com/a"
        );
        assert_eq!(redirect_status(&r), StatusCode::MOVED_PERMANENTLY);
    }

    // "Port is the port to be used in the value of the `Location` header in
    // the response."
    #[test]
    fn explicit_port_overrides() {
        let any = PathMatch::Prefix("/".into());
        let r = redirect(|r| {
            r.scheme = Some("https".into());
            r.port = Some(8443);
        });
        assert_eq!(
            loc(&r, &any, "example.com", "/", 80, "http"),
            "https://example.com:8443/"
        );
        let r = redirect(|r| r.port = Some(80));
        assert_eq!(
            loc(&r, &any, "example.com:8080", "/", 8080, "http"),
            "http://example.com/"
        );
    }

    // "If redirect scheme is empty, the redirect port MUST be the Gateway
    // Listener port." (omitted when it is the scheme's default)
    #[test]
    fn no_scheme_uses_listener_port() {
        let any = PathMatch::Prefix("/".into());
        let r = redirect(|r| r.hostname = Some("other.example".into()));
        assert_eq!(
            loc(&r, &any, "example.com", "/x", 80, "http"),
            "http://other.example/x"
        );
        assert_eq!(
            loc(&r, &any, "example.com", "/x", 8080, "http"),
            "http://other.example:8080/x"
        );
        assert_eq!(
            loc(&r, &any, "example.com", "/x", 443, "https"),
            "https://other.example/x"
        );
        assert_eq!(
            loc(&r, &any, "example.com", "/x", 80, "https"),
            "https://other.example:80/x"
        );
    }

    // "Hostname is the hostname to be used in the value of the `Location`
    // header in the response. When empty, the hostname in the `Host` header
    // of the request is used."
    #[test]
    fn redirect_hostname() {
        let any = PathMatch::Prefix("/".into());
        let keep = redirect(|_| {});
        assert_eq!(
            loc(&keep, &any, "Example.com:80", "/", 80, "http"),
            "http://Example.com/"
        );
        let r = redirect(|r| r.hostname = Some("new.example".into()));
        assert_eq!(
            loc(&r, &any, "example.com", "/", 80, "http"),
            "http://new.example/"
        );
    }

    // "Path defines parameters used to modify the path of the incoming
    // request. The modified path is then used to construct the `Location`
    // header. When empty, the request path is used as-is."
    #[test]
    fn redirect_path_modifiers() {
        let pfx = PathMatch::Prefix("/original-prefix".into());
        let r = redirect(|r| {
            r.path = Some(PathModifier::ReplacePrefixMatch(
                "/replacement-prefix".into(),
            ))
        });
        assert_eq!(
            loc(&r, &pfx, "h", "/original-prefix/lemon?x=1", 80, "http"),
            "http://h/replacement-prefix/lemon?x=1"
        );
        let r = redirect(|r| {
            r.path = Some(PathModifier::ReplaceFullPath(
                "/full-path-replacement".into(),
            ))
        });
        assert_eq!(
            loc(&r, &pfx, "h", "/original-prefix/lemon", 80, "http"),
            "http://h/full-path-replacement"
        );
        let r = redirect(|r| r.path = Some(PathModifier::ReplaceFullPath("/new?a=b".into())));
        assert_eq!(
            loc(&r, &pfx, "h", "/original-prefix?x=1", 80, "http"),
            "http://h/new?a=b"
        );
    }

    // "StatusCode is the HTTP status code to be used in response." Enum
    // 301;302;303;307;308, default 302.
    #[test]
    fn redirect_status_codes() {
        for code in [301, 302, 303, 307, 308] {
            let r = redirect(|r| r.status_code = code);
            assert_eq!(redirect_status(&r).as_u16(), code);
        }
        assert_eq!(
            redirect_status(&RequestRedirect::default()),
            StatusCode::FOUND
        );
        assert_eq!(
            redirect_status(&redirect(|r| r.status_code = 200)),
            StatusCode::FOUND
        );
    }

    // ----- rewrites --------------------------------------------------------

    // The ReplacePrefixMatch table of HTTPPathModifier:
    // "Request Path | Prefix Match | Replace Prefix | Modified Path"
    #[test]
    fn replace_prefix_match_spec_table() {
        let table = [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
        ];
        for (path, pfx, repl, want) in table {
            let got = rewrite_path(
                &PathModifier::ReplacePrefixMatch(repl.into()),
                &PathMatch::Prefix(pfx.into()),
                path,
            );
            assert_eq!(got, want, "{path} {pfx} {repl:?}");
        }
    }

    // AGC how-to-url-rewrite: prefix `/shop` replaced by `/ecommerce`; a
    // replacement of `/` must not produce `//`.
    #[test]
    fn replace_prefix_match_segment_boundaries() {
        let shop = PathMatch::Prefix("/shop".into());
        let to = |r: &str| PathModifier::ReplacePrefixMatch(r.into());
        assert_eq!(
            rewrite_path(&to("/ecommerce"), &shop, "/shop/a"),
            "/ecommerce/a"
        );
        assert_eq!(
            rewrite_path(&to("/ecommerce"), &shop, "/shop"),
            "/ecommerce"
        );
        assert_eq!(rewrite_path(&to("/"), &shop, "/shop/a"), "/a");
        // Not on a segment boundary (cannot have matched): unchanged.
        assert_eq!(
            rewrite_path(&to("/ecommerce"), &shop, "/shopping"),
            "/shopping"
        );
        // Prefix "/" matches everything; the whole path is the rest.
        let root = PathMatch::Prefix("/".into());
        assert_eq!(rewrite_path(&to("/v2"), &root, "/a/b"), "/v2/a/b");
        // Defensive fallbacks.
        assert_eq!(
            rewrite_path(&to("/new"), &PathMatch::Exact("/old".into()), "/old"),
            "/new"
        );
        let re = PathMatch::regex("/.*").unwrap();
        assert_eq!(rewrite_path(&to("/new"), &re, "/old"), "/old");
        assert_eq!(rewrite_path(&to("rel"), &shop, "/shop/a"), "/rel/a");
    }

    // "ReplaceFullPath specifies the value with which to replace the full path
    // of a request during a rewrite or redirect."
    #[test]
    fn replace_full_path() {
        let m = PathModifier::ReplaceFullPath("/one".into());
        assert_eq!(
            rewrite_path(&m, &PathMatch::Prefix("/full".into()), "/full/path/x"),
            "/one"
        );
        // The URLRewrite filter carries the same modifier.
        let f = Filter::UrlRewrite(UrlRewrite {
            hostname: Some("rewritten.example".into()),
            path: Some(m),
        });
        assert!(matches!(
            f,
            Filter::UrlRewrite(UrlRewrite { path: Some(_), .. })
        ));
    }

    // ----- header modifiers -----------------------------------------------

    fn hm(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderModifier {
        let pair = |(n, v): &(&str, &str)| {
            (
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        };
        HeaderModifier {
            set: set.iter().map(pair).collect(),
            add: add.iter().map(pair).collect(),
            remove: remove
                .iter()
                .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
                .collect(),
        }
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    // "Set overwrites the request with the given header (name, value) before
    // the action." Input `my-header: foo`, set bar → `my-header: bar`.
    #[test]
    fn header_set_replaces() {
        let mut h = HeaderMap::new();
        h.append("my-header", HeaderValue::from_static("foo"));
        h.append("my-header", HeaderValue::from_static("foo2"));
        apply_header_modifier(&hm(&[("My-Header", "bar"), ("new", "1")], &[], &[]), &mut h);
        assert_eq!(values(&h, "my-header"), ["bar"]);
        assert_eq!(values(&h, "new"), ["1"]);
    }

    // "Add adds the given header(s) (name, value) to the request before the
    // action. It appends to any existing values associated with the header
    // name."
    #[test]
    fn header_add_appends() {
        let mut h = HeaderMap::new();
        h.append("my-header", HeaderValue::from_static("foo"));
        apply_header_modifier(
            &hm(&[], &[("MY-HEADER", "bar,baz"), ("fresh", "x")], &[]),
            &mut h,
        );
        assert_eq!(values(&h, "my-header"), ["foo", "bar,baz"]);
        assert_eq!(values(&h, "fresh"), ["x"]);
    }

    // "Remove the given header(s) from the HTTP request before the action.
    // [...] Note that the header names are case-insensitive"
    #[test]
    fn header_remove_is_case_insensitive() {
        let mut h = HeaderMap::new();
        h.append("my-header1", HeaderValue::from_static("foo"));
        h.append("my-header1", HeaderValue::from_static("again"));
        h.append("my-header2", HeaderValue::from_static("bar"));
        h.append("my-header3", HeaderValue::from_static("baz"));
        apply_header_modifier(
            &hm(&[], &[], &["My-Header1", "MY-HEADER3", "absent"]),
            &mut h,
        );
        assert!(h.get("my-header1").is_none() && h.get("my-header3").is_none());
        assert_eq!(values(&h, "my-header2"), ["bar"]);
    }

    // "If multiple entries specify equivalent header names, the first entry
    // with an equivalent name MUST be considered for a match. Subsequent
    // entries with an equivalent header name MUST be ignored."
    #[test]
    fn header_modifier_duplicate_names_first_wins() {
        let mut h = HeaderMap::new();
        apply_header_modifier(
            &hm(
                &[("foo", "1"), ("Foo", "2")],
                &[("bar", "a"), ("BAR", "b")],
                &[],
            ),
            &mut h,
        );
        assert_eq!(values(&h, "foo"), ["1"]);
        assert_eq!(values(&h, "bar"), ["a"]);
    }

    // ----- scale -----------------------------------------------------------

    // 1,000 routes on one listener: 400 exact hostnames, 100 wildcards, 500
    // hostname-less routes with distinct prefixes plus a catch-all. Checks
    // correctness only.
    #[test]
    fn index_of_1000_routes_finds_the_right_one() {
        let mut routes = Vec::new();
        for i in 0..400 {
            let host = format!("svc{i}.example.com");
            routes.push(route(
                &format!("exact-{i:04}"),
                &[host.as_str()],
                vec![rule(vec![prefix("/")])],
            ));
        }
        for i in 0..100 {
            let host = format!("*.team{i}.example.com");
            routes.push(route(
                &format!("wild-{i:04}"),
                &[host.as_str()],
                vec![rule(vec![prefix("/nomatch")]), rule(vec![exact("/x")])],
            ));
        }
        for i in 0..499 {
            let p = format!("/api/v{i}");
            routes.push(route(
                &format!("pfx-{i:04}"),
                &[],
                vec![rule(vec![header(prefix(&p), "tenant", &i.to_string())])],
            ));
        }
        routes.push(route_ts(
            "catch-all",
            "2020-01-01T00:00:00Z",
            &[],
            vec![rule(vec![])],
        ));
        // Attach order must not matter.
        routes.reverse();
        let idx = index(routes);
        assert_eq!(idx.len(), 1000);
        assert_eq!(idx.match_count(), 400 + 200 + 499 + 1);

        assert_eq!(
            which(&idx, &Req::get("svc123.example.com", "/anything")),
            hit("exact-0123", 0)
        );
        assert_eq!(
            which(&idx, &Req::get("SVC399.Example.com:80", "/")),
            hit("exact-0399", 0)
        );
        assert_eq!(
            which(&idx, &Req::get("a.b.team42.example.com", "/x")),
            hit("wild-0042", 1)
        );
        // Wildcard host but path not matched there: falls to hostname-less routes.
        assert_eq!(
            which(&idx, &Req::get("a.team42.example.com", "/y")),
            hit("catch-all", 0)
        );
        let req = Req::get("unknown.example.com", "/api/v250/items").header("tenant", "250");
        assert_eq!(which(&idx, &req), hit("pfx-0250", 0));
        // Segment boundary: /api/v25 must not catch /api/v250.
        let req = Req::get("unknown.example.com", "/api/v250").header("tenant", "25");
        assert_eq!(which(&idx, &req), hit("catch-all", 0));
        let req = Req::get("", "/api/v25/x").header("tenant", "25");
        assert_eq!(which(&idx, &req), hit("pfx-0025", 0));
        assert_eq!(
            which(&idx, &Req::get("svc1000.example.com", "/")),
            hit("catch-all", 0)
        );
    }
}
