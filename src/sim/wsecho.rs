//! A streaming WebSocket echo (RFC 6455 §5) for the simulated backends: payload goes back as it
//! arrives, so a message of any size costs one 32 KiB buffer per connection, never the whole
//! message.
//!
//! Two behaviours, as the sample images have them:
//! - [`Mode::TextChunks`]: echo-basic's `io.Copy(ws, ws)` over golang.org/x/net/websocket. Every
//!   `Read` (at most 32 KiB, at most one frame's rest) is written back as one complete text
//!   frame, so a 1 MiB binary message comes back as text frames of up to 32 KiB, and an empty
//!   message comes back as nothing (x/net's `Read` skips empty frames).
//! - [`Mode::KeepFrames`]: each frame goes back with its own opcode, FIN bit and length, its
//!   payload streamed.
//!
//! In both, a ping is answered with a pong of the same payload, a pong is ignored, and a close
//! frame is echoed (same code and reason) before the connection ends. A protocol error (an
//! unmasked client frame, RSV bits, an unknown opcode, a fragmented or long control frame, a
//! continuation out of place) gets a close frame with 1002 and ends the connection, as
//! tungstenite and x/net do. Text is not checked for UTF-8 while streaming: it is echoed as sent.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// How data frames are echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// echo-basic (x/net `io.Copy`): each read chunk as its own text frame.
    TextChunks,
    /// Frames as received (type, fragmentation and length kept).
    KeepFrames,
}

/// The chunk size of Go's `io.Copy` (its 32 KiB buffer).
const CHUNK: usize = 32 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A frame header as read.
struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
    mask: [u8; 4],
}

/// Why a frame was refused (answered with close 1002).
struct ProtocolError;

/// Echoes until the client closes, the connection fails, or a protocol error ends it.
pub async fn echo<S>(io: S, mode: Mode) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = BufReader::with_capacity(8 * 1024, io);
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(CHUNK + 14);
    // Whether a fragmented data message is open (a continuation is expected).
    let mut in_message = false;
    loop {
        let h = match read_header(&mut io).await? {
            Some(Ok(h)) => h,
            Some(Err(ProtocolError)) => return close_with(&mut io, 1002).await,
            None => return Ok(()),
        };
        let control = h.opcode & 0x8 != 0;
        if control {
            if h.len > 125 || !h.fin {
                return close_with(&mut io, 1002).await;
            }
            let n = h.len as usize;
            io.read_exact(&mut buf[..n]).await?;
            unmask(&mut buf[..n], h.mask, 0);
            match h.opcode {
                OP_PING => write_frame(&mut io, &mut out, true, OP_PONG, &buf[..n]).await?,
                OP_PONG => {}
                _ => {
                    // OP_CLOSE: echo it, then end.
                    write_frame(&mut io, &mut out, true, OP_CLOSE, &buf[..n]).await?;
                    return io.shutdown().await;
                }
            }
            continue;
        }
        // Data: text, binary or continuation.
        if (h.opcode == OP_CONTINUATION) != in_message {
            return close_with(&mut io, 1002).await;
        }
        in_message = !h.fin;
        if mode == Mode::KeepFrames {
            out.clear();
            put_header(&mut out, h.fin, h.opcode, h.len);
        }
        let mut rest = h.len;
        let mut offset = 0u64;
        while rest > 0 {
            let want = rest.min(CHUNK as u64) as usize;
            let n = io.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            unmask(&mut buf[..n], h.mask, offset);
            (rest, offset) = (rest - n as u64, offset + n as u64);
            match mode {
                Mode::TextChunks => {
                    write_frame(&mut io, &mut out, true, OP_TEXT, &buf[..n]).await?
                }
                Mode::KeepFrames => {
                    // The header goes out with the first chunk, in one write.
                    out.extend_from_slice(&buf[..n]);
                    io.write_all(&out).await?;
                    out.clear();
                }
            }
        }
        if mode == Mode::KeepFrames && !out.is_empty() {
            // An empty frame: its header alone.
            io.write_all(&out).await?;
        }
        io.flush().await?;
    }
}

/// Reads one frame header; `None` if the connection ended cleanly before one.
async fn read_header<S: AsyncRead + Unpin>(
    io: &mut S,
) -> io::Result<Option<Result<Header, ProtocolError>>> {
    let mut two = [0u8; 2];
    match io.read(&mut two[..1]).await? {
        0 => return Ok(None),
        _ => io.read_exact(&mut two[1..]).await?,
    };
    let (b0, b1) = (two[0], two[1]);
    let opcode = b0 & 0x0f;
    let masked = b1 & 0x80 != 0;
    let known = matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    );
    // RFC 6455 §5.2: RSV bits without an extension, unknown opcodes and (§5.3) an unmasked
    // client frame are all failures.
    if b0 & 0x70 != 0 || !known || !masked {
        return Ok(Some(Err(ProtocolError)));
    }
    let len = match b1 & 0x7f {
        126 => u64::from(io.read_u16().await?),
        127 => io.read_u64().await?,
        n => u64::from(n),
    };
    let mut mask = [0u8; 4];
    io.read_exact(&mut mask).await?;
    Ok(Some(Ok(Header {
        fin: b0 & 0x80 != 0,
        opcode,
        len,
        mask,
    })))
}

/// XORs with the masking key, `offset` bytes into the frame's payload.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: u64) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[((offset + i as u64) % 4) as usize];
    }
}

/// An unmasked (server) frame header.
fn put_header(out: &mut Vec<u8>, fin: bool, opcode: u8, len: u64) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

async fn write_frame<S: AsyncWrite + Unpin>(
    io: &mut S,
    out: &mut Vec<u8>,
    fin: bool,
    opcode: u8,
    payload: &[u8],
) -> io::Result<()> {
    out.clear();
    put_header(out, fin, opcode, payload.len() as u64);
    out.extend_from_slice(payload);
    io.write_all(out).await?;
    io.flush().await
}

/// Sends a close frame with `code` and ends the connection.
async fn close_with<S: AsyncWrite + Unpin>(io: &mut S, code: u16) -> io::Result<()> {
    let mut out = Vec::with_capacity(4);
    write_frame(io, &mut out, true, OP_CLOSE, &code.to_be_bytes()).await?;
    io.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio::time::timeout;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    const T: Duration = Duration::from_secs(10);

    /// A tungstenite client on one end of a pipe, the echo on the other.
    async fn pair(mode: Mode) -> WebSocketStream<tokio::io::DuplexStream> {
        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(echo(server, mode));
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        WebSocketStream::from_raw_socket(client, Role::Client, Some(config)).await
    }

    async fn next(ws: &mut WebSocketStream<tokio::io::DuplexStream>) -> Message {
        timeout(T, ws.next()).await.unwrap().unwrap().unwrap()
    }

    #[tokio::test]
    async fn frames_keep_their_type_and_controls_are_answered() {
        let mut ws = pair(Mode::KeepFrames).await;
        for m in [
            Message::Text("Hello world!!!".into()),
            Message::Binary(vec![0, 1, 2, 255].into()),
            Message::Binary(Vec::new().into()),
        ] {
            timeout(T, ws.send(m.clone())).await.unwrap().unwrap();
            assert_eq!(next(&mut ws).await, m);
        }
        timeout(T, ws.send(Message::Ping(b"p".to_vec().into())))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next(&mut ws).await, Message::Pong(b"p".to_vec().into()));
        let close = CloseFrame {
            code: CloseCode::from(4000),
            reason: "bye".into(),
        };
        timeout(T, ws.send(Message::Close(Some(close.clone()))))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next(&mut ws).await, Message::Close(Some(close)));
    }

    /// A message far larger than the buffer streams through, in both modes, with the client
    /// sending and reading at once (a buffering echo would need the whole message first).
    #[tokio::test]
    async fn large_messages_stream() {
        for mode in [Mode::KeepFrames, Mode::TextChunks] {
            let ws = pair(mode).await;
            let (mut tx, mut rx) = ws.split();
            // ASCII, so every text chunk is valid UTF-8 for the client.
            let big: Vec<u8> = (0..5_000_000u32).map(|i| b' ' + (i % 94) as u8).collect();
            let sent = big.clone();
            let sender = tokio::spawn(async move { tx.send(Message::Binary(sent.into())).await });
            let mut got = Vec::new();
            let mut frames = 0;
            while got.len() < big.len() {
                match timeout(T, rx.next()).await.unwrap().unwrap().unwrap() {
                    Message::Binary(b) if mode == Mode::KeepFrames => got.extend_from_slice(&b),
                    Message::Text(t) if mode == Mode::TextChunks => {
                        got.extend_from_slice(t.as_bytes())
                    }
                    other => panic!("{mode:?}: unexpected {other:?}"),
                }
                frames += 1;
            }
            timeout(T, sender).await.unwrap().unwrap().unwrap();
            assert!(got == big, "{mode:?}: payload differs");
            match mode {
                Mode::KeepFrames => assert_eq!(frames, 1),
                Mode::TextChunks => assert!(frames >= big.len() / CHUNK, "{frames} frames"),
            }
        }
    }

    /// The echo of a frame starts before the frame has all arrived.
    #[tokio::test]
    async fn echo_starts_before_the_frame_ends() {
        for mode in [Mode::KeepFrames, Mode::TextChunks] {
            let (mut client, server) = tokio::io::duplex(256 * 1024);
            tokio::spawn(echo(server, mode));
            // A masked binary frame announcing 1 MiB (mask 0: payload as is), 10 KiB sent.
            let mut head = vec![0x82, 0xff];
            head.extend_from_slice(&(1u64 << 20).to_be_bytes());
            head.extend_from_slice(&[0; 4]);
            head.extend_from_slice(&[b'a'; 10 * 1024]);
            timeout(T, client.write_all(&head)).await.unwrap().unwrap();
            let mut got = vec![0u8; 4];
            timeout(T, client.read_exact(&mut got))
                .await
                .unwrap()
                .unwrap();
            let expected: &[u8] = match mode {
                Mode::KeepFrames => &[0x82, 0x7f, 0, 0],
                Mode::TextChunks => &[0x81, 0x7e],
            };
            assert_eq!(&got[..expected.len()], expected, "{mode:?}");
        }
    }

    #[tokio::test]
    async fn text_chunks_echo_binary_as_text_and_skip_empty_messages() {
        let mut ws = pair(Mode::TextChunks).await;
        timeout(T, ws.send(Message::Binary(Vec::new().into())))
            .await
            .unwrap()
            .unwrap();
        timeout(T, ws.send(Message::Binary(b"bin".to_vec().into())))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next(&mut ws).await, Message::Text("bin".into()));
    }

    #[tokio::test]
    async fn protocol_errors_close_with_1002() {
        for frame in [
            &b"\x81\x02hi"[..],       // unmasked
            &b"\xc1\x80\0\0\0\0"[..], // RSV1
            &b"\x83\x80\0\0\0\0"[..], // opcode 3
            &b"\x09\x80\0\0\0\0"[..], // fragmented ping
            &b"\x80\x80\0\0\0\0"[..], // continuation with no message
        ] {
            let (mut client, server) = tokio::io::duplex(1024);
            tokio::spawn(echo(server, Mode::KeepFrames));
            timeout(T, client.write_all(frame)).await.unwrap().unwrap();
            let mut reply = Vec::new();
            timeout(T, client.read_to_end(&mut reply))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(reply, b"\x88\x02\x03\xea", "{frame:?}");
        }
    }
}
