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

fn route_ts(name: &str, ts: &str, hosts: &[&str], rules: Vec<RuleRuntime>) -> Arc<RouteRuntime> {
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

/// Property-based tests of path and hostname matching against the spec's wording, written
/// independently of the implementation (segments and labels).
mod props {
    use super::*;
    use proptest::prelude::*;

    fn path() -> impl Strategy<Value = String> {
        let seg = prop::sample::select(vec!["", "a", "ab", "abc", "b", "A"]);
        prop::collection::vec(seg, 0..5).prop_map(|s| format!("/{}", s.join("/")))
    }

    fn host() -> impl Strategy<Value = String> {
        let label = prop::sample::select(vec!["a", "b", "example", "com", "EXAMPLE", "x-y"]);
        prop::collection::vec(label, 1..5).prop_map(|l| l.join("."))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// "PathPrefix: matches based on a URL path prefix split by `/`. Matching is done on a
        /// path element by element basis. [...] a trailing `/` is ignored."
        #[test]
        fn path_prefix_matches_whole_elements(prefix in path(), slash in any::<bool>(), p in path()) {
            let prefix = if slash { format!("{prefix}/") } else { prefix };
            let trimmed = prefix.trim_end_matches('/');
            let want: Vec<&str> = trimmed.split('/').collect();
            let got: Vec<&str> = p.split('/').collect();
            let expected = trimmed.is_empty() || got.starts_with(&want);
            prop_assert_eq!(path_matches(&PathMatch::Prefix(prefix.clone()), &p), expected, "{} vs {}", prefix, p);
            prop_assert_eq!(path_matches(&PathMatch::Exact(prefix.clone()), &p), prefix == p);
        }

        /// Hostnames: exact match ignoring case (and a trailing dot and port in the Host);
        /// `*.example.com` needs one or more whole labels in front of the suffix.
        #[test]
        fn hostnames_match_by_labels(pattern in host(), wild in any::<bool>(), h in host(), port in any::<bool>()) {
            let sent = if port { format!("{h}:8080") } else { h.clone() };
            let host_labels: Vec<String> = h.split('.').map(str::to_ascii_lowercase).collect();
            let pat_labels: Vec<String> = pattern.split('.').map(str::to_ascii_lowercase).collect();
            if wild {
                let p = format!("*.{pattern}");
                let expected = host_labels.len() > pat_labels.len() && host_labels.ends_with(&pat_labels);
                prop_assert_eq!(hostname_rank(Some(&p), &sent).is_some(), expected, "{} vs {}", p, sent);
            } else {
                prop_assert_eq!(hostname_rank(Some(&pattern), &sent).is_some(), host_labels == pat_labels);
            }
        }
    }
}
