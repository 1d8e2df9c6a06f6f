//! The wire under the attacks: raw loopback connections (from any 127/8 address), whole
//! requests written before the answer is read, chunked bodies, and the memory bounds the
//! attacks are held to.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::json;

use super::serve_util::Server;
use super::serve_util::watch::memory;

pub const MB: u64 = 1 << 20;
/// A normal `/embed` under attack answers within this.
pub const PROBE_BOUND: Duration = Duration::from_secs(10);

pub fn addr(s: &Server) -> SocketAddr {
    s.base
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address")
}

/// A connection from `127.0.0.<host>` (every 127/8 address is loopback on Linux).
pub fn connect_from(s: &Server, host: u8) -> TcpStream {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    let from = SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0));
    sock.bind(&from.into()).expect("binding a loopback address");
    sock.connect(&addr(s).into()).expect("connecting");
    let c: TcpStream = sock.into();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Reads until the end of an answer's head (or the connection's end); returns the head.
pub fn read_head(c: &mut TcpStream) -> String {
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends a whole request (head, then the body in one write), as clients that write before
/// reading do, and returns the answer's status; a reset or broken pipe panics.
pub fn whole(s: &Server, head: &str, body: &[u8]) -> u16 {
    let mut c = TcpStream::connect(addr(s)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(head.as_bytes())
        .and_then(|()| c.write_all(body))
        .unwrap_or_else(|e| panic!("the request was reset while sent: {e}\n{head}"));
    let head = read_head(&mut c);
    head.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {head:?}"))
}

pub fn post_head(path: &str, extra: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {len}\r\n\r\n"
    )
}

/// A chunked body of `n` bytes of JSON whitespace after `{"inputs": "w5"`, in 64 KiB chunks.
pub fn chunked(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let first = br#"{"inputs": "w5""#;
    out.extend_from_slice(format!("{:x}\r\n", first.len()).as_bytes());
    out.extend_from_slice(first);
    out.extend_from_slice(b"\r\n");
    let chunk = vec![b' '; 65536];
    for _ in 0..n.div_ceil(chunk.len()) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"1\r\n}\r\n0\r\n\r\n");
    out
}

/// The peak memory's growth from `before`, checked against `bound` bytes.
pub fn peak_growth(s: &Server, before: u64, bound: u64, what: &str) -> u64 {
    let grew = memory(s.pid()).peak.saturating_sub(before);
    eprintln!("{what}: peak resident memory grew by {} MiB", grew / MB);
    assert!(
        grew <= bound,
        "{what}: the server's peak memory grew by {} MiB, over {} MiB",
        grew / MB,
        bound / MB
    );
    grew
}

/// Warms the server up (pipelines, buffers) so that later growth is the attack's.
pub fn warm(s: &Server) {
    for _ in 0..3 {
        s.ok("/embed", &json!({ "inputs": ["w5 w6 w7", "w8"] }));
    }
}
