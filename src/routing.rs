//! The routing table: the contract between the controller, the gateway proxy
//! and the health checker.
//!
//! # Design
//!
//! The controller reconciles Gateway API objects (Gateway, HTTPRoute, Service,
//! EndpointSlice, AGC policies) into one immutable [`RoutingTable`] and
//! publishes it *whole* through a `tokio::sync::watch` channel of
//! `Arc<RoutingTable>`. Readers (the proxy for every request, the health
//! checker for every probe round) clone the `Arc` and work on that snapshot:
//!
//! * **Compile once.** Everything that can be decided without a request is
//!   decided when the table is built: regular expressions are compiled (and
//!   anchored, see [`AnchoredRegex`]), header names are parsed into
//!   [`http::HeaderName`] (which lower-cases them, so matching needs no
//!   case folding), route hostnames are normalised and bucketed, and every
//!   HTTPRoute match of a listener is sorted by Gateway API precedence in
//!   [`RouteIndex::new`]. The per-request matcher in `proxy::route` only
//!   walks pre-sorted slices and compares strings.
//! * **Read-only snapshot, no locks.** Nothing in here has interior
//!   mutability. A new configuration is a new table; in-flight requests keep
//!   the snapshot they started with, so a reconcile can never tear a request
//!   between two configurations.
//! * **Cheap to share.** Gateways, backends and routes sit behind `Arc`, so the
//!   controller can reuse unchanged pieces from the previous table and a route
//!   attached to several listeners is stored once.
//! * **Comparable.** Every type implements `PartialEq` (regexes compare by
//!   their source pattern) so the controller can skip publishing a table whose
//!   content did not change ([`RoutingTable::same_content`]).
//!
//! Validation (rejecting routes, computing status conditions, resolving
//! `backendRefs`, intersecting listener and route hostnames) is the
//! controller's job. The types here only carry *accepted* configuration;
//! things that must still fail at request time are represented explicitly
//! ([`BackendTarget::Invalid`], [`Filter::Unsupported`]).

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use regex::Regex;

/// Value of the `server` response header and of the probe `User-Agent`
/// that AGC sends (`fc/custom-health-probe.md`; observed 503 replies).
pub const AGC_SERVER_NAME: &str = "Microsoft-Azure-Application-LB/AGC";

/// AGC's request timeout when neither the HTTPRoute rule nor a RoutePolicy
/// sets one (components.md: "request 60 s").
pub const AGC_DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Cookie name AGC uses for `managed-cookie` session affinity.
pub const MANAGED_COOKIE_NAME: &str = "AGCAffinity";

/// Lifetime of the managed affinity cookie (86400 s per session-affinity.md).
pub const MANAGED_COOKIE_LIFETIME: Duration = Duration::from_secs(86_400);

/// Listener socket bind results the proxy reports back to the controller,
/// keyed `(gateway namespace, gateway name, listener name)`; `Err` carries
/// the bind error so the listener can be marked `Programmed=False`.
pub type Bindings = HashMap<(String, String, String), Result<(), String>>;

// ---------------------------------------------------------------------------
// Table, gateways, listeners
// ---------------------------------------------------------------------------

/// One complete, immutable routing configuration.
///
/// Published whole; see the module docs for why there are no partial updates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutingTable {
    /// Monotonic counter set by the controller for each published table; lets
    /// logs and the admin API say which configuration served a request.
    pub version: u64,
    /// Programmed gateways (one AGC frontend each).
    pub gateways: Vec<Arc<GatewayRuntime>>,
    /// Every Service port referenced by an accepted route, with its endpoints
    /// and the probe that decides their health.
    pub backends: FastMap<BackendKey, Arc<BackendRuntime>>,
}

/// A `HashMap` with FNV-1a hashing, for the maps the proxy reads per
/// request (backends by key, routes by hostname): their keys are short and
/// come from the controller, so SipHash's flooding resistance buys nothing
/// and costs about 700 instructions per request.
pub type FastMap<K, V> = HashMap<K, V, fnv::FnvBuildHasher>;

impl RoutingTable {
    /// The gateway `namespace/name`, if programmed.
    pub fn gateway(&self, namespace: &str, name: &str) -> Option<&Arc<GatewayRuntime>> {
        self.gateways
            .iter()
            .find(|g| g.namespace == namespace && g.name == name)
    }

    /// The runtime state of a backend referenced by a route.
    pub fn backend(&self, key: &BackendKey) -> Option<&Arc<BackendRuntime>> {
        self.backends.get(key)
    }

    /// Equality ignoring [`RoutingTable::version`]: true when publishing
    /// `other` after `self` would change nothing for readers.
    pub fn same_content(&self, other: &RoutingTable) -> bool {
        self.gateways == other.gateways && self.backends == other.backends
    }
}

/// A programmed Gateway: one frontend address and its listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayRuntime {
    pub namespace: String,
    pub name: String,
    /// Local address the simulator binds this frontend to (stands in for the
    /// Azure frontend FQDN).
    pub address: Ipv4Addr,
    /// Listeners in `spec.listeners` order. Several may share a port (e.g.
    /// HTTPS listeners for different hostnames); see
    /// `proxy::route::select_listener`.
    pub listeners: Vec<ListenerRuntime>,
}

/// Listener protocol; AGC supports only HTTP and HTTPS (no passthrough).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerProtocol {
    Http,
    Https,
}

impl ListenerProtocol {
    /// URI scheme of requests received on such a listener.
    pub fn scheme(self) -> &'static str {
        match self {
            ListenerProtocol::Http => "http",
            ListenerProtocol::Https => "https",
        }
    }
}

/// One accepted listener of a gateway, with the routes attached to it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerRuntime {
    /// `spec.listeners[].name` (also the `sectionName` routes attach to).
    pub name: String,
    /// The port from the Gateway spec (80 or 443 on AGC). The proxy binds
    /// `port + --port-offset`; everything in the table uses the spec port.
    pub port: u16,
    pub protocol: ListenerProtocol,
    /// Listener hostname; `None` accepts any host.
    pub hostname: Option<String>,
    /// Certificates for HTTPS listeners; `None` for HTTP.
    pub tls: Option<TlsSettings>,
    /// The attached routes, compiled and precedence-sorted.
    pub routes: RouteIndex,
}

/// TLS termination settings of an HTTPS listener. The proxy chooses the
/// certificate by SNI; nothing here implements TLS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// In `certificateRefs` order (AGC allows up to two: one RSA, one ECDSA).
    pub certificates: Vec<CertificatePem>,
}

/// A resolved `kubernetes.io/tls` Secret.
///
/// `Debug` redacts the private key so that logging a table never leaks it.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificatePem {
    /// The Secret, as `namespace/name`.
    pub secret: String,
    /// Hostname this certificate is for, if the controller knows it (used for
    /// SNI selection); `None` = use as the listener default.
    pub hostname: Option<String>,
    /// `tls.crt`: PEM certificate chain, leaf first.
    pub cert_chain_pem: String,
    /// `tls.key`: PEM private key.
    pub key_pem: String,
}

impl fmt::Debug for CertificatePem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificatePem")
            .field("secret", &self.secret)
            .field("hostname", &self.hostname)
            .field(
                "cert_chain_pem",
                &format_args!("<{} bytes>", self.cert_chain_pem.len()),
            )
            .field("key_pem", &format_args!("<redacted>"))
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Route index
// ---------------------------------------------------------------------------

/// How specifically a route (or listener) hostname matched the request host.
///
/// Ordered from weakest to strongest, so `max` picks the winner. This encodes
/// the HTTPRoute rule "precedence must be given to rules from the HTTPRoute
/// with the largest number of: characters in a matching non-wildcard
/// hostname; characters in a matching hostname".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostRank {
    /// The route (or listener) has no hostname: matches every host.
    Any,
    /// A `*.suffix` wildcard matched; carries `suffix.len()`, so a longer
    /// wildcard outranks a shorter one.
    Wildcard(usize),
    /// A non-wildcard hostname equal to the request host.
    Exact,
}

/// One `(route, rule, match)` triple of a [`RouteIndex`], by position.
///
/// Indices instead of references because the index owns the routes; the
/// matcher resolves them with `get`, so a bad index can never panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Position in [`RouteIndex::routes`].
    pub route: u32,
    /// Position in [`RouteRuntime::rules`].
    pub rule: u32,
    /// Position in [`RuleRuntime::matches`]; `None` for a rule without
    /// matches, which has the implicit match [`RouteIndex::implicit_match`].
    pub matched: Option<u32>,
}

/// The compiled routes of one listener, sorted by Gateway API precedence.
///
/// Built once per table by [`RouteIndex::new`]:
///
/// 1. Routes are sorted by creation timestamp (oldest first), then by
///    `"{namespace}/{name}"`; a route's position is the cross-route
///    tie-break.
/// 2. Every match of every rule becomes an [`IndexEntry`] in one bucket per
///    normalised route hostname: exact hostnames, `*.suffix` wildcards
///    (keyed by `suffix`) and "any host" for routes without hostnames.
/// 3. Each bucket is sorted by [`MatchPrecedence`] (best first), then route
///    position, rule index and match index.
///
/// Because every sort key is independent of the request, the first entry
/// of a bucket that matches a request is the best match in that bucket; the
/// matcher visits buckets from the most to the least specific hostname
/// ([`RouteIndex::candidates`]).
#[derive(Debug, Clone, Default)]
pub struct RouteIndex {
    routes: Vec<Arc<RouteRuntime>>,
    exact: FastMap<Box<str>, Vec<IndexEntry>>,
    wildcard: FastMap<Box<str>, Vec<IndexEntry>>,
    any_host: Vec<IndexEntry>,
    implicit: HttpMatch,
    entries: usize,
}

impl PartialEq for RouteIndex {
    /// Two indexes are equal when they hold equal routes; the buckets are
    /// derived from the routes. Routes are kept sorted, so attach order does
    /// not matter.
    fn eq(&self, other: &Self) -> bool {
        self.routes == other.routes
    }
}

impl RouteIndex {
    /// Compiles the routes attached to one listener.
    ///
    /// `routes[].hostnames` must already be the *effective* hostnames (the
    /// controller intersects them with the listener hostname); an empty list
    /// means "every host".
    pub fn new(mut routes: Vec<Arc<RouteRuntime>>) -> Self {
        // Cross-route tie-break: "The oldest Route based on creation
        // timestamp", then "The Route appearing first in alphabetical order by
        // {namespace}/{name}". Timestamps are Kubernetes RFC 3339 strings in
        // UTC (`2024-01-02T03:04:05Z`), whose byte order is time order.
        routes.sort_by(|a, b| {
            a.creation_timestamp
                .cmp(&b.creation_timestamp)
                .then_with(|| cmp_ns_name(a, b))
        });

        // Buckets are filled with (precedence, entry) pairs, sorted, then
        // stripped of the key: the per-request scan only needs the entries.
        type Keyed = Vec<(MatchPrecedence, IndexEntry)>;
        let mut exact: HashMap<Box<str>, Keyed> = HashMap::new();
        let mut wildcard: HashMap<Box<str>, Keyed> = HashMap::new();
        let mut any_host: Keyed = Vec::new();
        let mut entries = 0;

        for (route_pos, route) in routes.iter().enumerate() {
            let keyed = route_entries(route_pos, route);
            entries += keyed.len();
            // A route may list the same hostname twice (or in two cases);
            // each bucket must get its entries once.
            let mut seen: Vec<HostKey> = Vec::with_capacity(route.hostnames.len());
            for h in &route.hostnames {
                let key = HostKey::parse(h);
                if !seen.contains(&key) {
                    seen.push(key);
                }
            }
            if seen.is_empty() || seen.contains(&HostKey::Any) {
                // An empty list and a bare `*` both mean every host; nothing
                // more specific is needed then.
                seen.clear();
                seen.push(HostKey::Any);
            }
            for key in seen {
                let bucket = match key {
                    HostKey::Exact(h) => exact.entry(h.into_boxed_str()).or_default(),
                    HostKey::Wildcard(s) => wildcard.entry(s.into_boxed_str()).or_default(),
                    HostKey::Any => &mut any_host,
                };
                bucket.extend_from_slice(&keyed);
            }
        }

        fn finish(mut bucket: Keyed) -> Vec<IndexEntry> {
            // Best precedence first; then the older route, the earlier rule,
            // the earlier match ("the FIRST matching rule (in list order)").
            bucket.sort_by(|(pa, a), (pb, b)| {
                pb.cmp(pa)
                    .then(a.route.cmp(&b.route))
                    .then(a.rule.cmp(&b.rule))
                    .then(a.matched.cmp(&b.matched))
            });
            bucket.into_iter().map(|(_, e)| e).collect()
        }

        RouteIndex {
            routes,
            exact: exact.into_iter().map(|(k, v)| (k, finish(v))).collect(),
            wildcard: wildcard.into_iter().map(|(k, v)| (k, finish(v))).collect(),
            any_host: finish(any_host),
            implicit: HttpMatch::default(),
            entries,
        }
    }

    /// The routes, in tie-break order (oldest first, then `namespace/name`).
    pub fn routes(&self) -> &[Arc<RouteRuntime>] {
        &self.routes
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no route is attached (every request gets 404).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Number of `(rule, match)` entries, counted once per route (not per
    /// hostname bucket).
    pub fn match_count(&self) -> usize {
        self.entries
    }

    /// The match of rules that have none: "If no matches are specified, the
    /// default is a prefix path match on "/"".
    pub fn implicit_match(&self) -> &HttpMatch {
        &self.implicit
    }

    /// The buckets that may serve `host`, most specific first: the exact
    /// bucket, then wildcard buckets from the longest suffix to the shortest,
    /// then the routes without hostnames.
    ///
    /// `host` must be normalised: no port, ASCII lower case, no trailing dot
    /// (`proxy::route::normalize_host` does that). Empty buckets are skipped.
    pub fn candidates<'a>(&'a self, host: &'a str) -> Candidates<'a> {
        Candidates {
            index: self,
            host,
            stage: Stage::Exact,
        }
    }
}

/// Iterator returned by [`RouteIndex::candidates`].
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    index: &'a RouteIndex,
    host: &'a str,
    stage: Stage,
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    Exact,
    /// Look for the next `.` at or after this byte offset.
    Wildcard(usize),
    Any,
    Done,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = (HostRank, &'a [IndexEntry]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.stage {
                Stage::Exact => {
                    self.stage = Stage::Wildcard(0);
                    if let Some(b) = self.index.exact.get(self.host) {
                        return Some((HostRank::Exact, b));
                    }
                }
                Stage::Wildcard(from) => {
                    if self.index.wildcard.is_empty() {
                        self.stage = Stage::Any;
                        continue;
                    }
                    let Some(dot) = self.host.get(from..).and_then(|s| s.find('.')) else {
                        self.stage = Stage::Any;
                        continue;
                    };
                    let dot = from + dot;
                    self.stage = Stage::Wildcard(dot + 1);
                    // `*.example.com` needs at least one non-empty label in
                    // front of the suffix, so a leading dot never counts; the
                    // first dot found gives the longest suffix.
                    if dot == 0 {
                        continue;
                    }
                    let suffix = self.host.get(dot + 1..).unwrap_or("");
                    if let Some(b) = self.index.wildcard.get(suffix) {
                        return Some((HostRank::Wildcard(suffix.len()), b));
                    }
                }
                Stage::Any => {
                    self.stage = Stage::Done;
                    if !self.index.any_host.is_empty() {
                        return Some((HostRank::Any, &self.index.any_host));
                    }
                }
                Stage::Done => return None,
            }
        }
    }
}

/// A normalised route hostname, as used for bucketing.
#[derive(Debug, PartialEq, Eq)]
enum HostKey {
    Exact(String),
    /// The suffix after `*.`.
    Wildcard(String),
    Any,
}

impl HostKey {
    fn parse(hostname: &str) -> HostKey {
        let h = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
        if h.is_empty() || h == "*" {
            HostKey::Any
        } else if let Some(suffix) = h.strip_prefix("*.") {
            HostKey::Wildcard(suffix.to_owned())
        } else {
            HostKey::Exact(h)
        }
    }
}

fn cmp_ns_name(a: &RouteRuntime, b: &RouteRuntime) -> std::cmp::Ordering {
    // Compare the joined "{namespace}/{name}" strings byte by byte, without
    // allocating them. This is not the same as comparing (namespace, name):
    // "a-b/x" < "a/x" because '-' sorts before '/'.
    let ka = a.namespace.bytes().chain(Some(b'/')).chain(a.name.bytes());
    let kb = b.namespace.bytes().chain(Some(b'/')).chain(b.name.bytes());
    ka.cmp(kb)
}

fn route_entries(route_pos: usize, route: &RouteRuntime) -> Vec<(MatchPrecedence, IndexEntry)> {
    let mut out = Vec::new();
    let Ok(route_pos) = u32::try_from(route_pos) else {
        return out;
    };
    for (rule_idx, rule) in route.rules.iter().enumerate() {
        let Ok(rule_idx) = u32::try_from(rule_idx) else {
            break;
        };
        if rule.matches.is_empty() {
            out.push((
                HttpMatch::default().precedence(),
                IndexEntry {
                    route: route_pos,
                    rule: rule_idx,
                    matched: None,
                },
            ));
            continue;
        }
        for (match_idx, m) in rule.matches.iter().enumerate() {
            let Ok(match_idx) = u32::try_from(match_idx) else {
                break;
            };
            out.push((
                m.precedence(),
                IndexEntry {
                    route: route_pos,
                    rule: rule_idx,
                    matched: Some(match_idx),
                },
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Routes, rules, matches
// ---------------------------------------------------------------------------

/// An accepted HTTPRoute as seen by one listener.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRuntime {
    pub namespace: String,
    pub name: String,
    /// `metadata.creationTimestamp` (RFC 3339, UTC, as Kubernetes writes it);
    /// used only for precedence tie-breaks.
    pub creation_timestamp: String,
    /// Effective hostnames: already intersected with the listener hostname by
    /// the controller. Empty = every host. `*.example.com` is a wildcard.
    pub hostnames: Vec<String>,
    /// `spec.rules`, in order (order matters for tie-breaks).
    pub rules: Vec<RuleRuntime>,
}

/// One `spec.rules[]` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleRuntime {
    /// ORed matches; empty = one implicit `PathPrefix /` match.
    pub matches: Vec<HttpMatch>,
    /// Rule-level filters, in spec order.
    pub filters: Vec<Filter>,
    /// Weighted backends; see [`WeightedBackend`].
    pub backends: Vec<WeightedBackend>,
    pub timeouts: Timeouts,
    /// From a RoutePolicy targeting the route.
    pub session_affinity: Option<SessionAffinity>,
}

/// One `HTTPRouteMatch`: all conditions are ANDed.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpMatch {
    /// Defaults to `PathPrefix /`.
    pub path: PathMatch,
    /// Header conditions. If several name the same header, only the first
    /// counts (spec); the matcher skips the later ones.
    pub headers: Vec<HeaderMatch>,
    /// Query parameter conditions; same first-wins rule for repeated names.
    pub query: Vec<QueryMatch>,
    /// Request method, if the match restricts it.
    pub method: Option<Method>,
}

impl Default for HttpMatch {
    /// "If this field is not specified, a default prefix match on the "/" path
    /// is provided."
    fn default() -> Self {
        HttpMatch {
            path: PathMatch::Prefix("/".to_owned()),
            headers: Vec::new(),
            query: Vec::new(),
            method: None,
        }
    }
}

/// Static specificity of an [`HttpMatch`]; greater wins.
///
/// Field order is comparison order (derived `Ord`), mirroring the spec list:
/// Exact path, longest PathPrefix, (RegularExpression, implementation-
/// specific: ranked below any prefix), method, most headers, most query
/// parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct MatchPrecedence {
    /// 2 = Exact, 1 = PathPrefix, 0 = RegularExpression.
    pub path_rank: u8,
    /// Characters of the path value: the full value for Exact, the prefix
    /// without its trailing `/` for PathPrefix (a trailing `/` is ignored for
    /// matching, so `/foo` and `/foo/` tie), 0 for regexes.
    pub path_len: usize,
    pub method: bool,
    /// Distinct header names.
    pub headers: usize,
    /// Distinct query parameter names.
    pub query: usize,
}

impl HttpMatch {
    /// This match's precedence key (request-independent).
    pub fn precedence(&self) -> MatchPrecedence {
        let (path_rank, path_len) = match &self.path {
            PathMatch::Exact(p) => (2, p.len()),
            PathMatch::Prefix(p) => (1, p.trim_end_matches('/').len()),
            PathMatch::Regex(_) => (0, 0),
        };
        let headers = self
            .headers
            .iter()
            .enumerate()
            .filter(|(i, h)| !self.headers[..*i].iter().any(|p| p.name == h.name))
            .count();
        let query = self
            .query
            .iter()
            .enumerate()
            .filter(|(i, q)| !self.query[..*i].iter().any(|p| p.name == q.name))
            .count();
        MatchPrecedence {
            path_rank,
            path_len,
            method: self.method.is_some(),
            headers,
            query,
        }
    }
}

/// `HTTPPathMatch`. Matching is case-sensitive for every type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The whole path equals the value: `/abc` matches `/abc` only.
    Exact(String),
    /// Element-wise prefix: `/abc` matches `/abc`, `/abc/`, `/abc/def`, not
    /// `/abcd`. The value is kept as written (a trailing `/` is ignored when
    /// matching) because `ReplacePrefixMatch` needs it.
    Prefix(String),
    /// `RegularExpression`, RE2-like syntax of the `regex` crate, matched
    /// against the whole path.
    Regex(AnchoredRegex),
}

impl PathMatch {
    /// A `RegularExpression` path match; fails on an invalid pattern.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        AnchoredRegex::new(pattern).map(PathMatch::Regex)
    }
}

/// A header or query value condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// Byte-for-byte, case-sensitive equality.
    Exact(String),
    /// `RegularExpression`, matched against the whole value.
    Regex(AnchoredRegex),
}

/// `HTTPHeaderMatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// Parsed (hence lower-cased) header name: "Name matching MUST be
    /// case-insensitive" costs nothing per request.
    pub name: HeaderName,
    pub value: StringMatch,
}

impl HeaderMatch {
    /// Builds a header match from the spec's string name.
    pub fn new(name: &str, value: StringMatch) -> Result<Self, http::header::InvalidHeaderName> {
        Ok(HeaderMatch {
            name: HeaderName::from_bytes(name.as_bytes())?,
            value,
        })
    }
}

/// `HTTPQueryParamMatch`. Names are case-sensitive ("This must be an exact
/// string match").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryMatch {
    pub name: String,
    pub value: StringMatch,
}

/// A regular expression that only matches a whole input.
///
/// Gateway API regexes match "the URL path" (or a header/query value), not a
/// substring, so the pattern is compiled as `^(?:pattern)$`. Doing it at
/// compile time (rather than checking that a `find` spans the input) is the
/// only correct way: a leftmost-first search for `/foo|/foo/bar` in
/// `/foo/bar` finds `/foo` and would wrongly reject the request. The `regex`
/// crate runs in linear time, so user patterns cannot cause catastrophic
/// backtracking.
#[derive(Clone)]
pub struct AnchoredRegex {
    pattern: String,
    regex: Regex,
}

impl AnchoredRegex {
    /// Compiles `pattern` anchored at both ends.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        let regex = Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(AnchoredRegex {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    /// The pattern as configured (without the added anchors).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// True when the whole of `s` matches.
    pub fn is_full_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

impl fmt::Debug for AnchoredRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnchoredRegex({:?})", self.pattern)
    }
}

impl PartialEq for AnchoredRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for AnchoredRegex {}

// ---------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------

/// An `HTTPRouteFilter`, applied in spec order.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    RequestHeaderModifier(HeaderModifier),
    ResponseHeaderModifier(HeaderModifier),
    RequestRedirect(RequestRedirect),
    UrlRewrite(UrlRewrite),
    RequestMirror(RequestMirror),
    /// `CORS` (GEP-1767): preflights answered by the gateway, headers added to the rest.
    Cors(CorsPolicy),
    /// A filter the controller accepted but cannot honour (e.g. an
    /// unresolved `ExtensionRef`). "the filter MUST NOT be skipped. Instead,
    /// requests that would have been processed by that filter MUST receive a
    /// HTTP error response": the proxy answers 500.
    Unsupported {
        reason: String,
    },
}

/// `HTTPCORSFilter`'s fields; the rules that read them are in `proxy::cors`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CorsPolicy {
    pub allow_origins: Vec<String>,
    pub allow_credentials: bool,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    /// Seconds; the CRD defaults it to 5.
    pub max_age: u32,
}

/// `HTTPHeaderFilter`. Names are parsed [`HeaderName`]s (lower-cased), values
/// pre-validated [`HeaderValue`]s, so applying it never parses or fails.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderModifier {
    /// Replace every value of the header.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Append a value, keeping existing ones.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Remove every value of the header.
    pub remove: Vec<HeaderName>,
}

/// `HTTPRequestRedirectFilter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRedirect {
    /// `http` or `https`; `None` keeps the request scheme.
    pub scheme: Option<String>,
    /// `None` keeps the request host.
    pub hostname: Option<String>,
    /// `None` derives the port from the scheme or the listener (see
    /// `proxy::route::redirect_location`).
    pub port: Option<u16>,
    /// `None` keeps the request path.
    pub path: Option<PathModifier>,
    /// 301, 302 (the default), 303, 307 or 308.
    pub status_code: u16,
}

impl Default for RequestRedirect {
    fn default() -> Self {
        RequestRedirect {
            scheme: None,
            hostname: None,
            port: None,
            path: None,
            status_code: 302,
        }
    }
}

/// `HTTPURLRewriteFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlRewrite {
    /// Replacement `Host` header value.
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

/// `HTTPPathModifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    ReplaceFullPath(String),
    /// Replaces the part of the path matched by the rule's `PathPrefix`.
    ReplacePrefixMatch(String),
}

/// `HTTPRequestMirrorFilter` (AGC 1.12.1+): a copy of the request goes to
/// `target`, its response is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMirror {
    pub target: BackendTarget,
    /// Fraction of requests mirrored: `numerator / denominator`
    /// (`percent: p` is `p / 100`; unset is `1 / 1`).
    pub numerator: u32,
    pub denominator: u32,
}

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

/// One `backendRefs[]` entry of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedBackend {
    /// Share of the rule's traffic: `weight / sum(weights)`. 0 = never chosen.
    pub weight: u32,
    pub target: BackendTarget,
    /// Filters that run only when this backend is chosen.
    pub filters: Vec<Filter>,
}

/// Where a weighted backend sends traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendTarget {
    /// A Service port; look it up in [`RoutingTable::backends`].
    Service(BackendKey),
    /// A backendRef the controller could not resolve (`BackendNotFound`,
    /// `InvalidKind`, `RefNotPermitted`, ...). It keeps its weight: "the
    /// proportion of requests that would otherwise have been routed to an
    /// invalid backend MUST receive a 500", which is also what AGC's
    /// troubleshooting guide describes.
    Invalid { reason: String },
}

/// A Service port: the unit AGC load-balances and health-checks.
///
/// Displays as `namespace/service/port`, the form of AGC's backendHealth API
/// (`service-name=<ns>/<svc>/<port>`), and parses back from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    pub namespace: String,
    pub service: String,
    /// The Service port (not the target port).
    pub port: u16,
}

impl fmt::Display for BackendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.service, self.port)
    }
}

/// Error parsing a [`BackendKey`] from `namespace/service/port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backend key {input:?}: expected <namespace>/<service>/<port>")]
pub struct ParseBackendKeyError {
    pub input: String,
}

impl FromStr for BackendKey {
    type Err = ParseBackendKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseBackendKeyError {
            input: s.to_owned(),
        };
        let mut parts = s.split('/');
        let (Some(ns), Some(svc), Some(port), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        if ns.is_empty() || svc.is_empty() {
            return Err(err());
        }
        let port = port.parse::<u16>().map_err(|_| err())?;
        Ok(BackendKey {
            namespace: ns.to_owned(),
            service: svc.to_owned(),
            port,
        })
    }
}

/// Runtime state of one Service port.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendRuntime {
    pub key: BackendKey,
    /// From the EndpointSlices of the Service, resolved to the target port.
    pub endpoints: Vec<Endpoint>,
    /// The probe the health checker runs against every endpoint.
    pub probe: ProbeSettings,
    /// Connect to endpoints with TLS (a BackendTLSPolicy targets the
    /// Service, or its port's `appProtocol` asks for it).
    pub app_protocol_tls: bool,
    /// Server name sent in the TLS handshake (BackendTLSPolicy
    /// `default.sni`); `None` sends none.
    pub tls_sni: Option<String>,
}

/// One endpoint (pod IP and target port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Backing pod as `namespace/name`, when the EndpointSlice names it.
    pub pod: Option<String>,
    /// The EndpointSlice `ready` condition. Probe health is tracked by the
    /// health checker, not here: the table only changes on configuration.
    pub ready: bool,
}

/// Where a backend's probe settings came from (AGC precedence order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeSource {
    /// A HealthCheckPolicy targeting the Service.
    HealthCheckPolicy { namespace: String, name: String },
    /// The pods' `readinessProbe` (httpGet).
    ReadinessProbe,
    /// AGC's built-in default ([`ProbeSettings::agc_default`]).
    Default,
}

/// Probe type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// HTTP(S) GET, healthy on a status in `status_ranges`.
    Http,
    /// TCP connect only (AGC's default for GRPCRoute backends).
    Tcp,
}

/// How the health checker probes every endpoint of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    pub source: ProbeSource,
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes before an endpoint is healthy again.
    pub healthy_threshold: u32,
    /// Consecutive failures before an endpoint is unhealthy.
    pub unhealthy_threshold: u32,
    /// Probe port; `None` = the endpoint's own (target) port.
    pub port: Option<u16>,
    /// `Host` header of HTTP probes.
    pub host: String,
    /// Request path of HTTP probes.
    pub path: String,
    /// Inclusive ranges of healthy status codes.
    pub status_ranges: Vec<(u16, u16)>,
    /// HealthCheckPolicy `http.match.body`: if set, the response body must
    /// contain it (AGC does not document substring vs. equality; substring is
    /// the lenient reading).
    pub body_contains: Option<String>,
    pub use_tls: bool,
}

impl ProbeSettings {
    /// AGC's default probe (`fc/custom-health-probe.md`): HTTP GET `/` with
    /// `Host: localhost` every 5 s, 30 s timeout, healthy after 1 success,
    /// unhealthy after 3 failures, on the backend port, without TLS.
    /// Healthy statuses are not documented; 200–299 follows the community
    /// reports (a 302 fails).
    pub fn agc_default() -> Self {
        ProbeSettings {
            source: ProbeSource::Default,
            kind: ProbeKind::Http,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            healthy_threshold: 1,
            unhealthy_threshold: 3,
            port: None,
            host: "localhost".to_owned(),
            path: "/".to_owned(),
            status_ranges: vec![(200, 299)],
            body_contains: None,
            use_tls: false,
        }
    }

    /// True when `status` is in one of [`ProbeSettings::status_ranges`].
    pub fn status_ok(&self, status: u16) -> bool {
        self.status_ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

// ---------------------------------------------------------------------------
// Timeouts and session affinity
// ---------------------------------------------------------------------------

/// `HTTPRouteTimeouts` (or a RoutePolicy `routeTimeout`, which the
/// controller folds into `request`). `Some(Duration::ZERO)` disables a
/// timeout; `None` means "not configured".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub request: Option<Duration>,
    pub backend_request: Option<Duration>,
}

impl Timeouts {
    /// The request deadline to enforce: AGC's 60 s when unset, none when set
    /// to zero ("Setting a timeout to the zero duration (e.g. "0s") SHOULD
    /// disable the timeout completely").
    pub fn effective_request(&self) -> Option<Duration> {
        match self.request {
            None => Some(AGC_DEFAULT_REQUEST_TIMEOUT),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
        }
    }

    /// The per-backend-attempt deadline; `None` = no separate limit.
    pub fn effective_backend_request(&self) -> Option<Duration> {
        self.backend_request.filter(|d| !d.is_zero())
    }
}

/// RoutePolicy `sessionAffinity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionAffinity {
    /// AGC issues its own cookie ([`MANAGED_COOKIE_NAME`], lifetime
    /// [`MANAGED_COOKIE_LIFETIME`]); configured name/duration are ignored.
    ManagedCookie,
    /// The application's cookie `name` pins the client; `duration` is the
    /// cookie lifetime (`None` = session cookie).
    ApplicationCookie {
        name: String,
        duration: Option<Duration>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(ns: &str, name: &str, ts: &str) -> Arc<RouteRuntime> {
        Arc::new(RouteRuntime {
            namespace: ns.into(),
            name: name.into(),
            creation_timestamp: ts.into(),
            hostnames: vec![],
            rules: vec![RuleRuntime::default()],
        })
    }

    #[test]
    fn backend_key_display_and_parse_round_trip() {
        let k = BackendKey {
            namespace: "test-infra".into(),
            service: "backend-v1".into(),
            port: 8080,
        };
        assert_eq!(k.to_string(), "test-infra/backend-v1/8080");
        assert_eq!("test-infra/backend-v1/8080".parse::<BackendKey>(), Ok(k));
        for bad in ["", "a/b", "a/b/c", "a/b/70000", "a/b/1/2", "/b/1", "a//1"] {
            assert!(bad.parse::<BackendKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn agc_default_probe_matches_the_docs() {
        let p = ProbeSettings::agc_default();
        assert_eq!(p.kind, ProbeKind::Http);
        assert_eq!(p.path, "/");
        assert_eq!(p.host, "localhost");
        assert_eq!(p.interval, Duration::from_secs(5));
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!((p.healthy_threshold, p.unhealthy_threshold), (1, 3));
        assert_eq!(p.port, None);
        assert!(!p.use_tls);
        assert!(p.status_ok(200) && p.status_ok(299));
        assert!(!p.status_ok(302) && !p.status_ok(199));
    }

    #[test]
    fn timeouts_default_and_zero() {
        assert_eq!(
            Timeouts::default().effective_request(),
            Some(AGC_DEFAULT_REQUEST_TIMEOUT)
        );
        let off = Timeouts {
            request: Some(Duration::ZERO),
            backend_request: Some(Duration::ZERO),
        };
        assert_eq!(off.effective_request(), None);
        assert_eq!(off.effective_backend_request(), None);
    }

    #[test]
    fn anchored_regex_is_whole_input_and_compares_by_pattern() {
        let r = AnchoredRegex::new("/foo|/foo/bar").unwrap();
        // Unanchored leftmost-first search would stop at "/foo".
        assert!(r.is_full_match("/foo/bar"));
        assert!(r.is_full_match("/foo"));
        assert!(!r.is_full_match("/foo/ba"));
        assert!(!r.is_full_match("x/foo"));
        assert_eq!(r, AnchoredRegex::new("/foo|/foo/bar").unwrap());
        assert_ne!(r, AnchoredRegex::new("/foo").unwrap());
        assert!(AnchoredRegex::new("(").is_err());
    }

    #[test]
    fn index_equality_ignores_attach_order() {
        let a = RouteIndex::new(vec![route("ns", "a", "t1"), route("ns", "b", "t2")]);
        let b = RouteIndex::new(vec![route("ns", "b", "t2"), route("ns", "a", "t1")]);
        assert_eq!(a, b);
        assert_ne!(a, RouteIndex::new(vec![route("ns", "a", "t1")]));
        assert_eq!(a.len(), 2);
        assert_eq!(a.match_count(), 2);
    }

    #[test]
    fn routes_sorted_by_timestamp_then_joined_name() {
        let idx = RouteIndex::new(vec![
            route("a", "x", "2024-01-01T00:00:00Z"),
            route("a-b", "x", "2024-01-01T00:00:00Z"),
            route("z", "z", "2023-01-01T00:00:00Z"),
        ]);
        let names: Vec<_> = idx
            .routes()
            .iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect();
        assert_eq!(names, ["z/z", "a-b/x", "a/x"]);
    }

    #[test]
    fn certificate_debug_redacts_key() {
        let c = CertificatePem {
            secret: "ns/s".into(),
            hostname: None,
            cert_chain_pem: "CERT".into(),
            key_pem: "SECRET-KEY".into(),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("SECRET-KEY"), "{s}");
        assert!(s.contains("redacted"));
    }

    #[test]
    fn table_same_content_ignores_version() {
        let a = RoutingTable {
            version: 1,
            ..Default::default()
        };
        let b = RoutingTable {
            version: 2,
            ..Default::default()
        };
        assert!(a.same_content(&b));
        assert_ne!(a, b);
    }
}
