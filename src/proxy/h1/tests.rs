use super::*;

fn parse_raw(raw: &str) -> Result<Option<Head>, StatusCode> {
    let mut buf = BytesMut::from(raw.as_bytes());
    parse_request(&mut buf, 64 * 1024)
}

/// Parses `raw` with a `Host` field added after the request line when
/// it has none.
fn parse(raw: &str) -> Result<Option<Head>, StatusCode> {
    if raw.to_ascii_lowercase().contains("\r\nhost:") {
        return parse_raw(raw);
    }
    let (line, rest) = raw.split_once("\r\n").unwrap();
    parse_raw(&format!("{line}\r\nHost: a\r\n{rest}"))
}

#[test]
fn a_partial_head_waits_and_keeps_its_bytes() {
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n"[..]);
    assert!(parse_request(&mut buf, 1024).unwrap().is_none());
    assert_eq!(&buf[..], b"GET / HTTP/1.1\r\nHost: a\r\n");
    buf.extend_from_slice(b"\r\nGET /next");
    let head = parse_request(&mut buf, 1024).unwrap().unwrap();
    assert_eq!(head.req.uri(), "/");
    assert_eq!(head.req.headers()["host"], "a");
    assert_eq!(&buf[..], b"GET /next", "the pipelined bytes stay");
}

#[test]
fn keep_alive_follows_the_version_and_connection() {
    let ka = |raw: &str| parse(raw).unwrap().unwrap().keep_alive;
    assert!(ka("GET / HTTP/1.1\r\n\r\n"));
    assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
    assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
}

#[test]
fn body_framing_follows_rfc_9112() {
    let body = |raw: &str| parse(raw).map(|h| h.unwrap().body);
    assert_eq!(body("GET / HTTP/1.1\r\n\r\n"), Ok(BodyState::Done));
    assert_eq!(
        body("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
        Ok(BodyState::Length(5))
    );
    assert_eq!(
        body("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"),
        Ok(BodyState::Length(5))
    );
    // Chunked wins over Content-Length, which is dropped, and the
    // connection closes after the answer (RFC 9112 §6.1).
    let h = parse(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap()
    .unwrap();
    assert_eq!(h.body, BodyState::Chunked(ChunkState::Size));
    assert!(h.req.headers().get("content-length").is_none());
    assert!(!h.keep_alive);
    // Lengths are forwarded as one normalised value.
    let h =
        parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
    let all: Vec<_> = h.req.headers().get_all("content-length").iter().collect();
    assert_eq!(all, ["5"]);
    let bad = Err(StatusCode::BAD_REQUEST);
    assert_eq!(body("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n"), bad);
    assert_eq!(body("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"), bad);
    // Only chunked is implemented: any other coding is a 501 (nginx), chunked twice a 400.
    let not_implemented = Err(StatusCode::NOT_IMPLEMENTED);
    assert_eq!(
        body("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
        not_implemented
    );
    assert_eq!(
        body("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        not_implemented
    );
    assert_eq!(
        body("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
        bad
    );
    assert_eq!(
        body("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        bad
    );
}

#[test]
fn bad_and_oversized_heads_are_refused() {
    assert_eq!(
        parse("GET / HTTP/1.1\r\nHost x\r\n\r\n").err(),
        Some(StatusCode::BAD_REQUEST)
    );
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nX-Big: aaaaaaaaaaaaaaaa"[..]);
    assert_eq!(
        parse_request(&mut buf, 16).err(),
        Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
    );
    let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
    assert_eq!(
        parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).err(),
        Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
    );
    let long = "a".repeat(64 * 1024);
    assert_eq!(
        parse(&format!("GET /{long} HTTP/1.1\r\n\r\n")).err(),
        Some(StatusCode::URI_TOO_LONG)
    );
    let mut buf = BytesMut::from(format!("GET /{long} HTTP/1.1\r\n\r\n").as_bytes());
    assert_eq!(
        parse_request(&mut buf, 128 * 1024).err(),
        Some(StatusCode::URI_TOO_LONG),
        "over the http crate's URI limit"
    );
}

#[test]
fn hosts_versions_and_methods_are_checked() {
    let bad = Some(StatusCode::BAD_REQUEST);
    assert_eq!(
        parse_raw("GET / HTTP/1.1\r\nHost: evil.com/x?y\r\n\r\n").err(),
        bad
    );
    assert_eq!(parse_raw("GET / HTTP/1.1\r\nHost: a b\r\n\r\n").err(), bad);
    assert_eq!(
        parse_raw("GET http://user:pw@b.example/ HTTP/1.1\r\nHost: a\r\n\r\n").err(),
        bad
    );
    assert_eq!(
        parse_raw("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n").err(),
        Some(StatusCode::METHOD_NOT_ALLOWED)
    );
    let mut buf = BytesMut::from(&b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"[..]);
    let h = parse_request(&mut buf, 64 * 1024).unwrap().unwrap();
    assert_eq!(
        h.req.version(),
        Version::HTTP_11,
        "HTTP/1.2 is handled as 1.1"
    );
    let mut buf = BytesMut::from(&b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"[..]);
    assert_eq!(
        parse_request(&mut buf, 64 * 1024).err(),
        Some(StatusCode::HTTP_VERSION_NOT_SUPPORTED)
    );
}

#[test]
fn host_is_required_once_and_an_absolute_target_wins() {
    let bad = Some(StatusCode::BAD_REQUEST);
    assert_eq!(parse_raw("GET / HTTP/1.1\r\n\r\n").err(), bad);
    assert_eq!(
        parse_raw("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").err(),
        bad
    );
    assert!(parse_raw("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    let h = parse("GET http://b.example:8080/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.req.headers()["host"], "b.example:8080");
}

#[test]
fn expect_continue_is_owed_only_for_a_body() {
    let h = parse("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.expect_continue);
    let h = parse("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!h.expect_continue);
}

fn head_of(
    status: StatusCode,
    headers: &[(&str, &str)],
    body: ProxyBody,
) -> (String, Framing, bool) {
    let mut r = http::Response::new(());
    *r.status_mut() = status;
    for (k, v) in headers {
        r.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let (parts, ()) = r.into_parts();
    let mut out = BytesMut::new();
    let mut ka = true;
    let f = encode_head(&mut out, &parts, None, &body, false, false, &mut ka);
    (String::from_utf8(out.to_vec()).unwrap(), f, ka)
}

#[test]
fn response_framing_uses_the_length_when_known() {
    let (text, f, ka) = head_of(
        StatusCode::OK,
        &[("server", "x")],
        ProxyBody::Local(Some(Bytes::from_static(b"hello"))),
    );
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\nserver: x\r\ndate: "),
        "{text}"
    );
    assert!(text.ends_with("content-length: 5\r\n\r\n"), "{text}");
    assert_eq!((f, ka), (Framing::Length(5), true));
    // A length from the headers is not trusted for the body's framing.
    let (text, f, _) = head_of(
        StatusCode::OK,
        &[
            ("content-length", "99"),
            ("transfer-encoding", "chunked"),
            ("connection", "x"),
        ],
        ProxyBody::Local(Some(Bytes::from_static(b"hello"))),
    );
    assert_eq!(f, Framing::Length(5));
    assert_eq!(text.matches("content-length").count(), 1, "{text}");
    assert!(
        !text.contains("transfer-encoding") && !text.contains("connection: x"),
        "{text}"
    );
    let (text, f, _) = head_of(StatusCode::NO_CONTENT, &[], ProxyBody::Local(None));
    assert!(!text.contains("content-length"), "{text}");
    assert_eq!(f, Framing::None);
}

#[test]
fn field_names_are_classified_in_any_case() {
    assert_eq!(Field::of(b"Date"), Field::Date);
    assert_eq!(Field::of(b"SERVER"), Field::Server);
    assert_eq!(Field::of(b"content-Length"), Field::ContentLength);
    for n in ["te", "Trailer", "upgrade", "Connection", "keep-alive"] {
        assert_eq!(Field::of(n.as_bytes()), Field::HopByHop, "{n}");
    }
    for n in [
        "proxy-connection",
        "Transfer-Encoding",
        "Endpoint-Load-Metrics",
    ] {
        assert_eq!(Field::of(n.as_bytes()), Field::HopByHop, "{n}");
    }
    for n in ["x-date", "servers", "tt", "content-type", "x-upgrade1"] {
        assert_eq!(Field::of(n.as_bytes()), Field::Other, "{n}");
    }
    assert!(is_only_options(b"keep-alive"));
    assert!(is_only_options(b"Upgrade, close"));
    assert!(!is_only_options(b"close, x-private"));
}

#[test]
fn numbers_are_formatted() {
    assert_eq!(itoa(0, &mut [0; 20]), b"0");
    assert_eq!(itoa(1234567, &mut [0; 20]), b"1234567");
    assert_eq!(itoa(u64::MAX, &mut [0; 20]), b"18446744073709551615");
}

/// Property-based tests of the request-head parser: it may refuse more than httparse does,
/// never less; what it accepts is valid per the `http` crate's validators; and the answer does
/// not depend on how the bytes were split across reads.
mod props {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 64 * 1024;

    /// A request head drawn from fields that matter for framing and routing, valid and not.
    fn head() -> impl Strategy<Value = Vec<u8>> {
        let method = prop::sample::select(vec![
            "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT", "get", "X-Y",
            "G@T", "",
        ]);
        let target = prop::sample::select(vec![
            "/",
            "/a/b?c=d",
            "/%41/../x",
            "/bad%zz",
            "*",
            "http://example.com/x",
            "http://u@example.com/",
            "http://[::1]:8080/",
            "//a",
            "/a b",
            "a",
            "/\u{e9}",
        ]);
        let version = prop::sample::select(vec![
            "HTTP/1.1",
            "HTTP/1.0",
            "HTTP/1.2",
            "HTTP/1.9",
            "HTTP/2.0",
            "HTTP/0.9",
            "HTTP/1.10",
            "http/1.1",
            "HTTP/1",
        ]);
        let name = prop::sample::select(vec![
            "Host",
            "host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Expect",
            "X-A",
            "Upgrade",
            "Bad Name",
            "",
            "x\u{1}",
        ]);
        let value = prop::sample::select(vec![
            "a",
            "example.com",
            "example.com:80",
            "[::1]:8080",
            "a@b",
            "a/b",
            "5",
            "05",
            "+5",
            "-1",
            "5, 5",
            "5,6",
            "",
            " ",
            "chunked",
            "Chunked",
            "gzip, chunked",
            "chunked, gzip",
            "chunked, chunked",
            "identity",
            "close",
            "keep-alive",
            "Host",
            "content-length",
            "100-continue",
            "\t x",
            "a\u{1}b",
            "\u{e9}",
            "99999999999999999999999",
        ]);
        let eol = prop::sample::select(vec!["\r\n", "\r\n", "\r\n", "\n"]);
        (
            method,
            target,
            version,
            prop::collection::vec((name, value, eol.clone()), 0..6),
            eol,
            prop::collection::vec(any::<u8>(), 0..12),
        )
            .prop_map(|(m, t, v, fields, end, body)| {
                let mut raw = format!("{m} {t} {v}\r\n");
                for (n, val, eol) in fields {
                    raw.push_str(&format!("{n}: {val}{eol}"));
                }
                raw.push_str(end);
                let mut raw = raw.into_bytes();
                raw.extend_from_slice(&body);
                raw
            })
    }

    /// Any input: a generated head, arbitrary bytes, or a head with bytes flipped.
    fn input() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => head(),
            1 => prop::collection::vec(any::<u8>(), 0..64),
            2 => (head(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut h, i, b)| {
                if !h.is_empty() {
                    let i = i.index(h.len());
                    h[i] = b;
                }
                h
            }),
        ]
    }

    fn outcome(raw: &[u8]) -> (String, Vec<u8>) {
        let mut buf = BytesMut::from(raw);
        let r = match parse_request(&mut buf, MAX) {
            Ok(None) => "partial".to_string(),
            Ok(Some(h)) => format!("{h:?}"),
            Err(s) => s.to_string(),
        };
        (r, buf.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Reading the head in two parts, split anywhere, gives the same answer (and leaves the
        /// same bytes) as reading it at once; a prefix alone is either incomplete or already
        /// that answer.
        #[test]
        fn the_split_does_not_matter(raw in input(), at in any::<prop::sample::Index>()) {
            let whole = outcome(&raw);
            let k = at.index(raw.len() + 1);
            let mut buf = BytesMut::from(&raw[..k]);
            let first = parse_request(&mut buf, MAX);
            let got = match first {
                Ok(None) => {
                    // Its bytes stay, but for a version digit already rewritten to 1.1.
                    let mut kept = BytesMut::from(&raw[..k]);
                    prop_assert!(normalize_version(&mut kept).is_ok());
                    prop_assert_eq!(&buf[..], &kept[..], "an incomplete head keeps its bytes");
                    buf.extend_from_slice(&raw[k..]);
                    match parse_request(&mut buf, MAX) {
                        Ok(None) => "partial".to_string(),
                        Ok(Some(h)) => format!("{h:?}"),
                        Err(s) => s.to_string(),
                    }
                }
                Ok(Some(h)) => {
                    buf.extend_from_slice(&raw[k..]);
                    format!("{h:?}")
                }
                Err(s) => s.to_string(),
            };
            prop_assert_eq!(got, whole.0.clone());
            if whole.0 != "partial" && !whole.0.starts_with(|c: char| c.is_ascii_digit()) {
                prop_assert_eq!(buf.to_vec(), whole.1);
            }
        }

        /// What the parser accepts, httparse accepts the same way, and every part is valid for
        /// the `http` crate's validators (the `unsafe` header-value construction relies on it).
        #[test]
        fn accepted_heads_are_valid(raw in input()) {
            let mut buf = BytesMut::from(&raw[..]);
            let Ok(Some(head)) = parse_request(&mut buf, MAX) else {
                return Ok(());
            };
            let consumed = raw.len() - buf.len();
            // The same bytes, with the version as it was normalised.
            let mut norm = BytesMut::from(&raw[..]);
            normalize_version(&mut norm).map_err(|s| TestCaseError::fail(s.to_string()))?;
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut reference = httparse::Request::new(&mut fields);
            let status = reference.parse(&norm);
            prop_assert_eq!(status, Ok(httparse::Status::Complete(consumed)));
            prop_assert_eq!(reference.method, Some(head.req.method().as_str()));
            let target = reference.path.map(Uri::try_from);
            prop_assert!(matches!(&target, Some(Ok(u)) if u == head.req.uri()));
            let seen = |n: &str| reference.headers.iter().any(|h| h.name.eq_ignore_ascii_case(n));
            for (name, value) in head.req.headers() {
                prop_assert!(HeaderValue::from_bytes(value.as_bytes()).is_ok());
                prop_assert!(HeaderName::from_bytes(name.as_str().as_bytes()).is_ok());
            }
            let hosts: Vec<_> = head.req.headers().get_all(header::HOST).iter().collect();
            prop_assert!(hosts.len() <= 1);
            if let Some(h) = hosts.first() {
                let a = http::uri::Authority::try_from(h.as_bytes());
                prop_assert!(a.is_ok(), "Host {:?} is not an authority", h);
                prop_assert!(!h.as_bytes().contains(&b'@'));
            } else {
                prop_assert_eq!(head.req.version(), Version::HTTP_10, "1.1 needs a Host");
            }
            if let Some(cl) = head.req.headers().get(header::CONTENT_LENGTH) {
                prop_assert!(!cl.is_empty() && cl.as_bytes().iter().all(u8::is_ascii_digit));
                prop_assert_eq!(head.req.headers().get_all(header::CONTENT_LENGTH).iter().count(), 1);
            }
            if seen("transfer-encoding") {
                prop_assert_eq!(head.body, BodyState::Chunked(ChunkState::Size));
                prop_assert!(head.req.headers().get(header::CONTENT_LENGTH).is_none());
                if seen("content-length") {
                    prop_assert!(!head.keep_alive, "TE with CL closes the connection");
                }
            }
            prop_assert!(head.req.method() != Method::CONNECT);
            prop_assert!(normalize::normalize_path(head.req.uri().path()).is_some());
        }
    }
}
