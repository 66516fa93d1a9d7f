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
mod tests;
