//! The server's life under load and at its end: requests over the concurrency limit shed
//! with 429, clients that hang up mid-answer, and SIGTERM finishing the request in flight.

use serde_json::json;

use super::common::model_dir::model_dir;
use super::serve_util::Server;

#[test]
fn over_max_concurrent_requests_is_429() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(dir.path(), &[], &["--max-concurrent-requests", "1"]);
    let long = vec!["w9 w10 w11"; 150].join(" ");
    let body = json!({ "inputs": vec![long; 16] });
    let barrier = std::sync::Barrier::new(12);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    s.post("/embed_all", &body).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|&c| c == 200 || c == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429) && statuses.contains(&200),
        "{statuses:?}"
    );
    let (status, v) = s.post("/embed", &json!({ "inputs": "w5" }));
    assert_eq!(status, 200, "free again once the others finished: {v}");
    assert!(s.terminate().success());
}

/// Clients that hang up before their (large) answer is written must not take the server
/// down: writes to a reset socket fail for that connection only (no SIGPIPE death).
#[test]
fn clients_hanging_up_mid_response_leave_the_server_up() {
    use std::io::Write;
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(dir.path(), &[], &[]);
    let long = vec!["w9 w10 w11"; 150].join(" ");
    let body = json!({ "inputs": vec![long; 16] }).to_string();
    let addr = s.base.trim_start_matches("http://").to_string();
    for _ in 0..4 {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        let req = format!(
            "POST /embed_all HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(req.as_bytes()).unwrap();
        // Gone once the answer (megabytes of JSON) starts: closing with unread data resets
        // the connection, and the server's next writes fail.
        let mut first = [0u8; 1];
        std::io::Read::read_exact(&mut c, &mut first).unwrap();
        drop(c);
    }
    // The abandoned requests are answered into reset sockets meanwhile; the server lives.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (status, v) = s.post("/embed_all", &json!({ "inputs": "w5" }));
    assert_eq!(status, 200, "{v}");
    let (status, _) = s.get("/health");
    assert_eq!(status, 200);
    assert!(s.terminate().success(), "exit 0 after SIGTERM");
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_and_exits_0() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(dir.path(), &[], &[]);
    let long = vec!["w9 w10 w11"; 150].join(" ");
    let body = json!({ "inputs": vec![long; 32] });
    let status = std::thread::scope(|scope| {
        let request = scope.spawn(|| s.post("/embed_all", &body).0);
        std::thread::sleep(std::time::Duration::from_millis(50));
        s.sigterm();
        request.join().unwrap()
    });
    assert_eq!(status, 200, "the request in flight is answered");
    assert!(s.wait_exit().success(), "exit 0 after SIGTERM");
}
