//! The HTTP listener: an accept loop that bounds connections in total and per client
//! address, and serves each admitted connection with hyper's HTTP/1.1 connection builder,
//! whose header read timeout closes a connection that does not finish a request head in
//! time (also an idle keep-alive connection waiting for its next request).
//!
//! - A connection over `--max-connections` (503) or `--max-connections-per-client` (429) is
//!   answered at once and closed after its request is read and dropped (for at most
//!   [`LINGER`]), so that a client still sending gets the answer rather than a reset; at
//!   most [`REFUSING`] such answers are in progress, past that a refused connection is
//!   closed at once.
//! - A request head that started but did not finish within `--header-timeout` is answered
//!   408 before its connection closes (an idle connection is closed without a word, as
//!   HTTP allows).
//! - Shutdown: stop accepting, let every connection finish its request in flight (hyper's
//!   graceful shutdown), and wait for them (at most [`DRAIN_ON_STOP`]).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::metrics::Metrics;

/// How long a refused connection's request is read (and dropped) before it closes.
pub const LINGER: Duration = Duration::from_secs(2);
/// Refused connections answered at once; past that they are closed without an answer.
pub const REFUSING: usize = 64;
/// How long a stopping server waits for its connections' requests in flight.
pub const DRAIN_ON_STOP: Duration = Duration::from_secs(60);

/// The connection bounds.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Open connections at most (`--max-connections`).
    pub total: usize,
    /// Open connections from one client address at most (`--max-connections-per-client`;
    /// 0: no bound).
    pub per_client: usize,
    /// Time to receive a request head (`--header-timeout`).
    pub header_timeout: Duration,
}

/// The open connections, in total and by client address.
struct Registry {
    limits: ConnLimits,
    total: AtomicUsize,
    by_client: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; its counts go when it drops.
struct Admitted {
    reg: Arc<Registry>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.reg.total.fetch_sub(1, Ordering::SeqCst);
        let mut map = self.reg.by_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Why a connection was refused: its status line and message.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Total,
    PerClient,
}

impl Refusal {
    fn answer(self, limits: &ConnLimits) -> Vec<u8> {
        let (status, message) = match self {
            Refusal::Total => (
                "503 Service Unavailable",
                format!("over --max-connections {}; retry later", limits.total),
            ),
            Refusal::PerClient => (
                "429 Too Many Requests",
                format!(
                    "over --max-connections-per-client {}; retry later",
                    limits.per_client
                ),
            ),
        };
        let body = serde_json::json!({ "error": message, "error_type": "Overloaded" }).to_string();
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\nretry-after: 1\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn name(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::PerClient => "per_client",
        }
    }
}

impl Registry {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let mut map = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        if self.total.load(Ordering::SeqCst) >= self.limits.total {
            return Err(Refusal::Total);
        }
        let mine = map.entry(ip).or_insert(0);
        if self.limits.per_client > 0 && *mine >= self.limits.per_client {
            if *mine == 0 {
                map.remove(&ip);
            }
            return Err(Refusal::PerClient);
        }
        *mine += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        Ok(Admitted {
            reg: self.clone(),
            ip,
        })
    }
}

/// Accepts and serves connections until `stop` turns true, then waits for them.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let reg = Arc::new(Registry {
        limits,
        total: AtomicUsize::new(0),
        by_client: Mutex::new(HashMap::new()),
    });
    let refusing = Arc::new(Semaphore::new(REFUSING));
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    log::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopping(&mut stop) => break,
        };
        match reg.admit(addr.ip()) {
            Ok(admitted) => {
                metrics.connections.inc();
                let (app, stop, metrics) = (app.clone(), stop.clone(), metrics.clone());
                tokio::spawn(async move {
                    serve(stream, app, limits.header_timeout, stop).await;
                    drop(admitted);
                    metrics.connections.dec();
                });
            }
            Err(why) => {
                metrics
                    .connections_refused
                    .with_label_values(&[why.name()])
                    .inc();
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    let answer = why.answer(&limits);
                    tokio::spawn(async move {
                        answer_and_close(stream, &answer).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + DRAIN_ON_STOP;
    while reg.total.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resolves once `stop` turns true.
pub async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves one connection with hyper; a request head that started and did not finish in
/// time gets 408.
async fn serve(
    stream: TcpStream,
    app: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let shared = Arc::new(Shared {
        stream,
        read_since_write: AtomicUsize::new(0),
    });
    let io = TokioIo::new(SharedIo(shared.clone()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let served = {
        let conn = builder.serve_connection(io, TowerToHyperService::new(app));
        tokio::pin!(conn);
        tokio::select! {
            served = conn.as_mut() => served,
            () = stopping(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
        // The connection (and its handle on the socket) is gone here.
    };
    let Err(e) = served else {
        return;
    };
    if e.is_timeout() && shared.read_since_write.load(Ordering::SeqCst) > 0 {
        if let Ok(shared) = Arc::try_unwrap(shared) {
            let answer =
                b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            answer_and_close(shared.stream, answer).await;
        }
    }
}

/// Writes `answer`, shuts the sending side, and reads (and drops) what the client still
/// sends for at most [`LINGER`] before the socket closes: closing a socket with unread data
/// resets the connection, and the client would lose the answer.
async fn answer_and_close(mut stream: TcpStream, answer: &[u8]) {
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 8192];
        let mut read = 0usize;
        while read < (4 << 20) {
            match stream.read(&mut buf).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<(), io::Error>(())
    })
    .await;
}

/// The socket, shared between hyper's connection and the accept loop's 408, with the
/// bytes read since the last write (a request head in progress).
struct Shared {
    stream: TcpStream,
    read_since_write: AtomicUsize,
}

/// hyper's side of [`Shared`]: reads and writes through the socket's readiness.
struct SharedIo(Arc<Shared>);

impl AsyncRead for SharedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let s = &self.0;
        loop {
            ready!(s.stream.poll_read_ready(cx))?;
            match s.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    s.read_since_write.fetch_add(n, Ordering::SeqCst);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let s = &self.0;
        loop {
            ready!(s.stream.poll_write_ready(cx))?;
            match s.stream.try_write(buf) {
                Ok(n) => {
                    s.read_since_write.store(0, Ordering::SeqCst);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let s = &self.0;
        loop {
            ready!(s.stream.poll_write_ready(cx))?;
            match s.stream.try_write_vectored(bufs) {
                Ok(n) => {
                    s.read_since_write.store(0, Ordering::SeqCst);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let sock = socket2::SockRef::from(&self.0.stream);
        Poll::Ready(match sock.shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
            _ => Ok(()),
        })
    }
}
