//! What the gateway refuses or normalises in a request before it is routed or forwarded:
//! pure functions, one per rule.
//!
//! - [`valid_host`]: a `Host` must be `host[:port]` (RFC 9110 §7.2 with RFC 3986 §3.2.2:
//!   a reg-name of unreserved, pct-encoded and sub-delims characters, or an IP literal in
//!   brackets; an optional port of 1 to 5 digits: RFC 3986 allows an empty one, nginx does
//!   not). Anything else (`evil.com/x?y`, userinfo, spaces) is
//!   a 400, as nginx and Envoy answer.
//! - [`normalize_path`]: as Envoy with `normalize_path` on and as nginx: percent-encoded
//!   unreserved characters are decoded (RFC 3986 §6.2.2.2), other escapes get upper-case hex
//!   (§6.2.2.1), and dot segments are removed (§5.2.4), so `/public/../admin/x` is matched and
//!   forwarded as `/admin/x`. Escaped slashes (`%2F`) stay escaped (Envoy's default
//!   `path_with_escaped_slashes_action: KEEP_UNCHANGED`), backslashes and repeated slashes
//!   stay as sent (Envoy's `merge_slashes` is off by default). A `%` not followed by two hex
//!   digits is a 400. The query is never touched.

use std::borrow::Cow;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Whether a `Host` field value is a valid `host[:port]`.
pub fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = v.strip_prefix(b"[") {
        // IP-literal: an IPv6 address (or IPvFuture, which nobody sends) in brackets.
        let Some(end) = rest.iter().position(|b| *b == b']') else {
            return false;
        };
        let inner = &rest[..end];
        let ok = std::str::from_utf8(inner)
            .ok()
            .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
        if !ok {
            return false;
        }
        (&b""[..], &rest[end + 1..])
    } else {
        match v.iter().rposition(|b| *b == b':') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, &b""[..]),
        }
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => {
            !digits.is_empty() && digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    if !port_ok {
        return false;
    }
    if v.first() == Some(&b'[') {
        return true;
    }
    if host.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if b == b'%' {
            let ok = host.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && host.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
            continue;
        }
        if !(is_unreserved(b) || is_sub_delim(b)) {
            return false;
        }
        i += 1;
    }
    true
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The normalised path, borrowed when nothing changes; `None` for a malformed escape.
pub fn normalize_path(path: &str) -> Option<Cow<'_, str>> {
    let bytes = path.as_bytes();
    let needs_escapes = bytes.contains(&b'%');
    let needs_dots = path.split('/').any(|s| s == "." || s == "..");
    if !needs_escapes && !needs_dots {
        return Some(Cow::Borrowed(path));
    }
    // 1. Escapes: decode unreserved, upper-case the rest.
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (h, l) = (hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?);
            let c = h * 16 + l;
            if is_unreserved(c) {
                decoded.push(c);
            } else {
                decoded.push(b'%');
                decoded.extend_from_slice(format!("{c:02X}").as_bytes());
            }
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).ok()?;
    // 2. Dot segments (RFC 3986 §5.2.4, on an absolute path).
    let out = remove_dot_segments(&decoded);
    if out == path {
        Some(Cow::Borrowed(path))
    } else {
        Some(Cow::Owned(out))
    }
}

/// RFC 3986 §5.2.4 `remove_dot_segments` for a path starting with `/` (others are returned as
/// they are: an asterisk-form or authority-form target has no path to normalise).
pub fn remove_dot_segments(path: &str) -> String {
    if !path.starts_with('/') {
        return path.to_string();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut s = String::with_capacity(path.len());
    s.push('/');
    s.push_str(&out.join("/"));
    // A last `.` or `..` leaves the slash before it (`/a/.` is `/a/`, `///.` is `///`).
    if trailing_slash && !out.is_empty() {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_host_and_optional_port() {
        for ok in [
            "a",
            "contoso.com",
            "contoso.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "a-b_c~d",
            "xn--bcher-kva.example",
            "a%41b",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "evil.com/x?y",
            "user@host",
            "a b",
            "",
            ":80",
            "host:",
            "host:8o",
            "host:123456",
            "[::1",
            "[nope]",
            "a#b",
            "a\\b",
            "h%4",
            "h%zz",
            "a:1:2",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn paths_lose_dot_segments_and_unreserved_escapes() {
        let n = |p| normalize_path(p).map(|c| c.into_owned());
        assert_eq!(n("/public/../admin/x").as_deref(), Some("/admin/x"));
        assert_eq!(n("/a/./b/.").as_deref(), Some("/a/b/"));
        assert_eq!(n("/../../etc/passwd").as_deref(), Some("/etc/passwd"));
        assert_eq!(n("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(n("/%61dmin").as_deref(), Some("/admin"));
        assert_eq!(n("/p/%2e%2e/admin").as_deref(), Some("/admin"));
        assert_eq!(
            n("/a%2fb").as_deref(),
            Some("/a%2Fb"),
            "escaped slashes stay escaped"
        );
        assert_eq!(n("/a%20b").as_deref(), Some("/a%20b"));
        assert_eq!(
            n("//a//b").as_deref(),
            Some("//a//b"),
            "slashes are not merged"
        );
        assert_eq!(n("/a..b/.c").as_deref(), Some("/a..b/.c"));
        assert!(matches!(
            normalize_path("/plain/path"),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(n("/bad%zz"), None);
        assert_eq!(n("/bad%4"), None);
        assert_eq!(n("*").as_deref(), Some("*"));
    }

    /// Property: normalising is idempotent, never leaves a `.` or `..` segment in an absolute
    /// path, and never panics.
    #[test]
    fn normalisation_is_idempotent() {
        let atoms = [
            "/", ".", "..", "a", "%2e", "%2E", "%41", "%2f", "%", "%g", "b", "~", "%7e",
        ];
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let n = rng.usize(1..10);
            let mut p = String::from("/");
            for _ in 0..n {
                p.push_str(atoms[rng.usize(..atoms.len())]);
            }
            let Some(once) = normalize_path(&p) else {
                continue;
            };
            let twice = normalize_path(&once).map(|c| c.into_owned());
            assert_eq!(twice.as_deref(), Some(&*once), "{p}");
            assert!(
                !once.split('/').any(|s| s == "." || s == ".."),
                "{p} -> {once}"
            );
        }
    }

    /// Property-based tests, against RFC 3986's own algorithm and the `http` crate's parser.
    mod props {
        use super::*;
        use proptest::prelude::*;

        /// RFC 3986 §5.2.4, step by step as the RFC writes it (the reference).
        fn rfc_remove_dot_segments(path: &str) -> String {
            let mut input = path.to_string();
            let mut output = String::new();
            let pop = |o: &mut String| o.truncate(o.rfind('/').unwrap_or(0));
            while !input.is_empty() {
                if input.starts_with("../") {
                    input.drain(..3);
                } else if input.starts_with("./") {
                    input.drain(..2);
                } else if input.starts_with("/./") {
                    input.replace_range(..3, "/");
                } else if input == "/." {
                    input = "/".into();
                } else if input.starts_with("/../") {
                    input.replace_range(..4, "/");
                    pop(&mut output);
                } else if input == "/.." {
                    input = "/".into();
                    pop(&mut output);
                } else if input == "." || input == ".." {
                    input.clear();
                } else {
                    let start = usize::from(input.starts_with('/'));
                    let end = input[start..].find('/').map_or(input.len(), |i| i + start);
                    output.push_str(&input[..end]);
                    input.drain(..end);
                }
            }
            output
        }

        fn path() -> impl Strategy<Value = String> {
            let atom = prop::sample::select(vec![
                "/", ".", "..", "a", "b", "%2e", "%2E", "%41", "%7e", "%7E", "%2f", "%2F", "%20",
                "%", "%g", "%4", "~", "-", ";", "=", "%c3%a9",
            ]);
            prop::collection::vec(atom, 0..12).prop_map(|atoms| format!("/{}", atoms.concat()))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

            #[test]
            fn dot_segments_go_as_rfc_3986_removes_them(p in path()) {
                prop_assert_eq!(remove_dot_segments(&p), rfc_remove_dot_segments(&p));
            }

            /// Normalising is idempotent, leaves no dot segment and no escaped unreserved
            /// character, writes escapes in upper case, and keeps the path valid for `http`.
            #[test]
            fn normalised_paths_are_canonical(p in path()) {
                let Some(once) = normalize_path(&p) else {
                    // Only a malformed escape is refused.
                    let bad = p.match_indices('%').any(|(i, _)| {
                        !p.as_bytes().get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                    });
                    prop_assert!(bad, "refused {}", p);
                    return Ok(());
                };
                let twice = normalize_path(&once).map(Cow::into_owned);
                prop_assert_eq!(twice.as_deref(), Some(&*once));
                prop_assert!(!once.split('/').any(|s| s == "." || s == ".."));
                for (i, _) in once.match_indices('%') {
                    let h = &once.as_bytes()[i + 1..i + 3];
                    prop_assert!(h.iter().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
                    let c = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("zz"), 16);
                    prop_assert!(c.is_ok_and(|c| !is_unreserved(c)), "{} kept an escape", once);
                }
                prop_assert!(http::uri::PathAndQuery::try_from(&*once).is_ok());
            }
        }
    }
}
