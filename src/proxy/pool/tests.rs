use super::*;
use tokio::io::AsyncReadExt;

fn chunks(input: &[u8]) -> Result<(Vec<u8>, bool), &'static str> {
    let mut buf = BytesMut::from(input);
    let mut st = ChunkState::Size;
    let mut out = Vec::new();
    loop {
        match decode_chunked(&mut buf, &mut st)? {
            Step::Data(d) => out.extend_from_slice(&d),
            Step::NeedMore => return Ok((out, false)),
            Step::Done => return Ok((out, true)),
        }
    }
}

#[test]
fn chunked_bodies_decode_with_extensions_and_trailers() {
    let (body, done) = chunks(b"5;ext=1\r\nhello\r\n1\r\n \r\n0\r\nx-trailer: 1\r\n\r\n").unwrap();
    assert_eq!(body, b"hello ");
    assert!(done);
}

#[test]
fn partial_chunked_input_asks_for_more() {
    let (body, done) = chunks(b"a\r\n01234").unwrap();
    assert_eq!(body, b"01234");
    assert!(!done);
    let (_, done) = chunks(b"0\r\n").unwrap();
    assert!(!done, "the end needs the empty trailer line");
}

#[test]
fn bad_chunk_sizes_are_errors() {
    assert!(chunks(b"zz\r\n").is_err());
    assert!(chunks(b"+5\r\nhello\r\n0\r\n\r\n").is_err());
    assert!(chunks(b" 5\r\nhello\r\n0\r\n\r\n").is_err());
    assert!(chunks(b"5 ;x=1\r\nhello\r\n0\r\n\r\n").is_ok());
    assert!(chunks(b"\r\n").is_err());
    assert!(chunks(b"2\r\nabXX").is_err());
}

#[test]
fn raw_heads_keep_fields_in_order_and_void_a_length_under_chunked() {
    let raw = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\nx-a: 2\r\n\r\n";
    let (_, (_, head, framing, _)) = parse_head(&Bytes::copy_from_slice(raw), false)
        .unwrap()
        .unwrap();
    assert_eq!(framing, Framing::Chunked(ChunkState::Size));
    let fields: Vec<_> = head.fields().collect();
    assert_eq!(
        fields,
        [
            (&b"X-A"[..], &b"1"[..]),
            (b"Transfer-Encoding", b"chunked"),
            (b"x-a", b"2")
        ]
    );
    let lines: Vec<_> = head.lines().map(|(_, l)| l.into_owned()).collect();
    assert_eq!(lines[0], b"X-A: 1\r\n");
    let lf = b"HTTP/1.1 200 OK\nX-B:2\n\n";
    let (_, (_, bare, _, _)) = parse_head(&Bytes::copy_from_slice(lf), false)
        .unwrap()
        .unwrap();
    let lines: Vec<_> = bare.lines().map(|(_, l)| l.into_owned()).collect();
    assert_eq!(lines, [b"X-B: 2\r\n".to_vec()]);
    let map = head.to_header_map(0);
    let all: Vec<_> = map.get_all("x-a").iter().collect();
    assert_eq!(all, ["1", "2"]);
    assert!(map.get("content-length").is_none());
}

fn head(raw: &[u8], is_head: bool) -> (StatusCode, Framing, bool) {
    let (len, (status, _, framing, reuse)) = parse_head(&Bytes::copy_from_slice(raw), is_head)
        .unwrap()
        .unwrap();
    assert_eq!(len, raw.len());
    (status, framing, reuse)
}

#[test]
fn response_framing_follows_rfc_9112() {
    use Framing::*;
    let ok = |h: &str| head(format!("HTTP/1.1 200 OK\r\n{h}\r\n").as_bytes(), false);
    assert_eq!(
        ok("content-length: 12\r\n"),
        (StatusCode::OK, Length(12), true)
    );
    assert_eq!(ok("content-length: 0\r\n"), (StatusCode::OK, Empty, true));
    assert_eq!(
        ok("transfer-encoding: gzip, chunked\r\ncontent-length: 3\r\n").1,
        Chunked(ChunkState::Size)
    );
    assert_eq!(ok("transfer-encoding: gzip\r\n").1, UntilClose);
    assert_eq!(ok("").1, UntilClose);
    assert!(!ok("").2, "a close-delimited body ends the connection");
    assert!(!ok("content-length: 1\r\nconnection: close\r\n").2);
    // HEAD, 204 and 304 have no body whatever the headers say.
    let h = head(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n", true);
    assert_eq!(h.1, Empty);
    let h = head(
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 12\r\n\r\n",
        false,
    );
    assert_eq!(h.1, Empty);
    // HTTP/1.0 is reused only with keep-alive.
    assert!(!head(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", false).2);
    assert!(
        head(
            b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\nconnection: keep-alive\r\n\r\n",
            false
        )
        .2
    );
}

#[test]
fn bad_response_heads_are_rejected() {
    assert!(parse_head(
        &Bytes::from_static(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"),
        false
    )
    .is_err());
    assert!(parse_head(
        &Bytes::from_static(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"),
        false
    )
    .is_err());
    assert!(parse_head(&Bytes::from_static(b"garbage\r\n\r\n"), false).is_err());
    assert!(matches!(
        parse_head(&Bytes::from_static(b"HTTP/1.1 200 OK\r\nx: y\r\n"), false),
        Ok(None)
    ));
}

#[test]
fn request_heads_carry_the_body_framing() {
    let req = Request::post("/p?q=1")
        .header("host", "a")
        .header("content-length", "3")
        .body(http_body_util::Full::new(Bytes::from_static(b"abc")))
        .unwrap();
    let (parts, body) = req.into_parts();
    let (h, f) = encode_head(&parts, &body, None);
    assert_eq!(f, ReqFraming::Length(3));
    assert_eq!(
        &h[..],
        b"POST /p?q=1 HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\n"
    );

    let req = Request::post("/")
        .body(http_body_util::Full::new(Bytes::from_static(b"abc")))
        .unwrap();
    let (parts, body) = req.into_parts();
    assert!(encode_head(&parts, &body, None)
        .0
        .ends_with(b"content-length: 3\r\n\r\n"));

    let stream = http_body_util::StreamBody::new(futures_util::stream::iter(vec![Ok::<
        _,
        std::convert::Infallible,
    >(
        Frame::data(Bytes::from_static(b"x")),
    )]));
    let req = Request::put("/")
        .header("content-length", "9")
        .body(stream)
        .unwrap();
    let (parts, body) = req.into_parts();
    let (h, f) = encode_head(&parts, &body, None);
    assert_eq!(f, ReqFraming::Chunked);
    assert_eq!(
        &h[..],
        b"PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
    );

    // The forwarding fields follow the request's own.
    let fwd = Forwarding {
        xff_prev: Some("10.0.0.1".into()),
        peer_ip: HeaderValue::from_static("127.0.0.1"),
        proto: "https",
        request_id: Some(*b"00000000-0000-4000-8000-000000000000"),
    };
    let req = Request::get("/")
        .header("host", "a")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let (parts, body) = req.into_parts();
    assert_eq!(
        &encode_head(&parts, &body, Some(&fwd)).0[..],
        &b"GET / HTTP/1.1\r\nhost: a\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\nx-forwarded-proto: https\r\nx-request-id: 00000000-0000-4000-8000-000000000000\r\n\r\n"[..]
    );

    let req = Request::get("/")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let (parts, body) = req.into_parts();
    assert_eq!(
        encode_head(&parts, &body, None),
        (
            BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]),
            ReqFraming::Empty
        )
    );
}

/// A backend that answers every request on a connection with `pieces`,
/// written with pauses between them; counts connections.
async fn trickling_backend(
    pieces: &'static [&'static [u8]],
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                    for p in pieces {
                        s.write_all(p).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            });
        }
    });
    (addr, conns)
}

#[tokio::test]
async fn heads_and_bodies_split_across_reads_and_interim_answers() {
    const PIECES: &[&[u8]] = &[
        b"HTTP/1.1 100 Con",
        b"tinue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-",
        b"length: 5\r\nx-a: 1\r\n\r\nhel",
        b"lo",
    ];
    let (addr, conns) = trickling_backend(PIECES).await;
    let pool = Arc::new(Pool::new(Duration::from_secs(5), 8));
    for _ in 0..2 {
        let req = Request::get("/")
            .header("host", "x")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let fwd = tokio::time::timeout(
            Duration::from_secs(5),
            pool.forward(addr, None, req, false, None, None),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(fwd.response.status(), StatusCode::OK);
        assert_eq!(fwd.head.to_header_map(0)["x-a"], "1");
        let body = tokio::time::timeout(Duration::from_secs(5), fwd.response.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"hello");
    }
    assert_eq!(
        conns.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the connection was not reused"
    );
}

/// Property-based tests of the backend side's parsers: the chunked decoder and the response-head
/// reader, against their specs and against httparse as a reference.
mod props {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `pieces` one after another, decoding as far as possible after each.
    fn decode_pieces(pieces: &[Vec<u8>]) -> Result<(Vec<u8>, bool, Vec<u8>), &'static str> {
        let mut buf = BytesMut::new();
        let mut st = ChunkState::Size;
        let mut out = Vec::new();
        let mut done = false;
        for p in pieces {
            buf.extend_from_slice(p);
            loop {
                match decode_chunked(&mut buf, &mut st)? {
                    Step::Data(d) => out.extend_from_slice(&d),
                    Step::NeedMore => break,
                    Step::Done => {
                        done = true;
                        break;
                    }
                }
            }
            if done {
                break;
            }
        }
        Ok((out, done, buf.to_vec()))
    }

    /// Cuts `raw` at the given points.
    fn cut(raw: &[u8], points: &[prop::sample::Index]) -> Vec<Vec<u8>> {
        let mut at: Vec<usize> = points.iter().map(|p| p.index(raw.len() + 1)).collect();
        at.sort_unstable();
        let mut pieces = Vec::new();
        let mut from = 0;
        for a in at.into_iter().chain([raw.len()]) {
            pieces.push(raw[from..a].to_vec());
            from = a;
        }
        pieces
    }

    fn status_line() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "HTTP/1.1 200 OK",
            "HTTP/1.1 204 No Content",
            "HTTP/1.1 304 Not Modified",
            "HTTP/1.1 100 Continue",
            "HTTP/1.1 101 Switching Protocols",
            "HTTP/1.0 200 OK",
            "HTTP/1.1 404 ",
            "HTTP/1.1 999 X",
            "HTTP/1.1 20 OK",
            "HTTP/2 200 OK",
            "HTTP/1.1 200",
        ])
        .prop_map(str::to_string)
    }

    fn response() -> impl Strategy<Value = Vec<u8>> {
        let name = prop::sample::select(vec![
            "Content-Length",
            "content-length",
            "Transfer-Encoding",
            "Connection",
            "X-A",
            "Bad Name",
        ]);
        let value = prop::sample::select(vec![
            "0",
            "5",
            "05",
            "+5",
            "-5",
            " 5 ",
            "5, 5",
            "5,6",
            "",
            "x",
            "chunked",
            "gzip, chunked",
            "chunked, gzip",
            "close",
            "keep-alive",
            "\u{e9}",
            "a\u{1}",
        ]);
        (
            status_line(),
            prop::collection::vec((name, value), 0..5),
            prop::collection::vec(any::<u8>(), 0..8),
        )
            .prop_map(|(line, fields, body)| {
                let mut raw = format!("{line}\r\n");
                for (n, v) in fields {
                    raw.push_str(&format!("{n}: {v}\r\n"));
                }
                raw.push_str("\r\n");
                let mut raw = raw.into_bytes();
                raw.extend_from_slice(&body);
                raw
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Any body, chunked any way (with extensions and trailers) and delivered in any pieces,
        /// decodes to itself; what follows the last chunk stays in the buffer.
        #[test]
        fn chunked_bodies_round_trip(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..6),
            ext in prop::sample::select(vec!["", ";a=b", " ;x", ";q=\"v\""]),
            upper in any::<bool>(),
            trailers in prop::sample::select(vec!["", "x-t: 1\r\n", "a: b\r\nc: d\r\n"]),
            after in prop::collection::vec(any::<u8>(), 0..6),
            points in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        ) {
            let mut raw = Vec::new();
            for c in &chunks {
                let size = if upper { format!("{:X}", c.len()) } else { format!("{:x}", c.len()) };
                raw.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
                raw.extend_from_slice(c);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(format!("0{ext}\r\n{trailers}\r\n").as_bytes());
            raw.extend_from_slice(&after);
            let (body, done, rest) = decode_pieces(&cut(&raw, &points))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(body, chunks.concat());
            prop_assert!(done);
            // Bytes after the end are not consumed: what is left is the start of them (pieces
            // after the one that ended the body are not fed).
            prop_assert!(after.starts_with(&rest), "left {:?} of {:?}", rest, after);
        }

        /// A chunk-size line the decoder accepts, httparse's `parse_chunk_size` accepts with the
        /// same size (the decoder may be stricter, never more lenient).
        #[test]
        fn chunk_sizes_agree_with_httparse(
            line in prop::collection::vec(prop::sample::select(
                b"0123456789abcdefABCDEFxg;= \t\r\n+-\"".to_vec()), 0..20),
        ) {
            let mut raw = line.clone();
            raw.extend_from_slice(b"\r\n");
            let mut buf = BytesMut::from(&raw[..]);
            let mut st = ChunkState::Size;
            // The decoder goes on into the data (the CRLF after the line): count it back in.
            let taken = match decode_chunked(&mut buf, &mut st) {
                Err(_) => return Ok(()),
                Ok(Step::Data(d)) => d.len() as u64,
                Ok(_) => 0,
            };
            let size = match st {
                ChunkState::Data(n) => n + taken,
                ChunkState::DataEnd => taken,
                ChunkState::Trailers | ChunkState::Done => 0,
                ChunkState::Size => return Ok(()),
            };
            match httparse::parse_chunk_size(&raw) {
                Ok(httparse::Status::Complete((_, n))) => prop_assert_eq!(n, size),
                other => prop_assert!(false, "httparse: {:?} for {:?}", other, String::from_utf8_lossy(&raw)),
            }
        }

        /// The response-head reader: the same answer however much of the head has arrived; what
        /// it accepts, httparse accepts with the same status and length; and the framing is RFC
        /// 9112 §6.3's.
        #[test]
        fn response_heads_frame_as_rfc_9112(raw in response(), at in any::<prop::sample::Index>(), is_head in any::<bool>()) {
            let whole = parse_head(&Bytes::copy_from_slice(&raw), is_head);
            let k = at.index(raw.len() + 1);
            match parse_head(&Bytes::copy_from_slice(&raw[..k]), is_head) {
                Ok(None) => {}
                Ok(Some((n, h))) => prop_assert_eq!(Some((n, h.0, h.2, h.3)), whole.clone().ok().flatten().map(|(n, h)| (n, h.0, h.2, h.3))),
                Err(e) => prop_assert_eq!(Err(e), whole.clone().map(|_| ())),
            }
            let Ok(Some((len, (status, head, framing, reusable)))) = whole else {
                return Ok(());
            };
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut reference = httparse::Response::new(&mut fields);
            prop_assert_eq!(reference.parse(&raw), Ok(httparse::Status::Complete(len)));
            prop_assert_eq!(reference.code, Some(status.as_u16()));
            let has = |n: &str| reference.headers.iter().any(|h| h.name.eq_ignore_ascii_case(n));
            let lengths: Vec<&[u8]> = reference.headers.iter()
                .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| h.value)
                .collect();
            for v in &lengths {
                // RFC 9110 §8.6: Content-Length = 1*DIGIT.
                prop_assert!(!v.is_empty() && v.iter().all(u8::is_ascii_digit), "accepted Content-Length {:?}", String::from_utf8_lossy(v));
            }
            let no_body = is_head || status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
            let te = has("transfer-encoding");
            let expected = if no_body {
                Framing::Empty
            } else if te {
                framing // chunked or until close, checked below
            } else {
                match lengths.first().map(|v| std::str::from_utf8(v).unwrap_or("x").parse::<u64>()) {
                    Some(Ok(0)) => Framing::Empty,
                    Some(Ok(n)) => Framing::Length(n),
                    _ => Framing::UntilClose,
                }
            };
            prop_assert_eq!(framing, expected);
            if te && !no_body {
                prop_assert!(matches!(framing, Framing::Chunked(_) | Framing::UntilClose));
                // The length is not forwarded under a transfer coding.
                prop_assert!(head.fields().all(|(n, _)| !n.eq_ignore_ascii_case(b"content-length")));
            }
            if framing == Framing::UntilClose {
                prop_assert!(!reusable);
            }
        }
    }
}
