//! Hostile HTTP, byte by byte over a raw socket: wrong and made-up methods, too many and too
//! large headers, a negative or enormous `Content-Length`, a body that never comes, headers
//! sent a byte at a time. Each gets a prompt, bounded answer (problem+json where the
//! service shapes it), and none holds a connection open.

mod common;

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xiezhi_core::ServiceConfig;

async fn start() -> (String, tempfile::TempDir) {
    let (base, _service, dir) = common::start(ServiceConfig::default()).await;
    (base.trim_start_matches("http://").to_owned(), dir)
}

/// Sends raw bytes and reads the whole answer (the server closes or the deadline passes).
async fn exchange(address: &str, request: &[u8], deadline: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(Ok(read)) = tokio::time::timeout(deadline, stream.read(&mut buffer)).await {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
        // One response is all a refused request gets; stop once it is complete.
        if complete(&answer) {
            break;
        }
    }
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
        .and_then(Result::ok);
    length.is_some_and(|n| body.len() >= n)
}

fn status(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_and_made_up_methods_get_405_problems() {
    let (address, _dir) = start().await;
    let mut methods: Vec<String> = ["DELETE", "PUT", "PATCH"].iter().map(|m| m.to_string()).collect();
    methods.extend((0..50).map(|i| format!("BREW{i}")));
    for method in methods {
        let request =
            format!("{method} /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let (answer, _) = exchange(&address, request.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(status(&answer), 405, "{method}: {answer}");
        assert!(answer.contains("application/problem+json") && answer.contains("method_not_allowed"), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_are_refused_at_once() {
    let (address, _dir) = start().await;
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let huge = format!("X-Big: {}\r\n", "a".repeat(20_000));
    for (what, headers, expected) in [
        ("too many headers", many.as_str(), 431),
        ("too large a header", huge.as_str(), 431),
        ("a negative length", "Content-Length: -5\r\n", 400),
    ] {
        let request = format!("POST /v1/payments HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        let (answer, took) = exchange(&address, request.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(status(&answer), expected, "{what}: {answer}");
        assert!(took < Duration::from_secs(2), "{what} took {took:?}");
    }
    // A body declared at 10 GB is refused before a byte of it is sent.
    let request = "POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n";
    let (answer, took) = exchange(&address, request.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 413, "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// A body that never comes and headers sent a byte at a time: neither holds the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_timed_out() {
    let (address, _dir) = start().await;
    let silent_body = async {
        // With a valid key: a body is read only for a caller who may call.
        let request = format!(
            "POST /v1/payments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            common::ADMIN_KEY
        );
        exchange(&address, request.as_bytes(), Duration::from_secs(20)).await
    };
    let trickle = async {
        let started = Instant::now();
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"POST /v1/payments HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        // One byte a second of a header that never ends.
        for _ in 0..30 {
            if stream.write_all(b"X").await.is_err() {
                break;
            }
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                _ => {}
            }
        }
        started.elapsed()
    };
    let ((answer, took), trickled) = tokio::join!(silent_body, trickle);
    assert_eq!(status(&answer), 408, "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let limit = xiezhi_server::BODY_READ_TIMEOUT + Duration::from_secs(3);
    assert!(took < limit, "the silent body held the connection {took:?}");
    let limit = xiezhi_server::HEADER_READ_TIMEOUT + Duration::from_secs(3);
    assert!(trickled < limit, "a header a byte a second held the connection {trickled:?}");
}

/// One client network cannot take every connection slot: past its share a new connection is
/// closed at once, and one freed makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_network_holds_at_most_its_share_of_connections() {
    let (address, _dir) = start().await;
    let mut held = Vec::new();
    for _ in 0..xiezhi_server::MAX_CONNECTIONS_PER_NETWORK {
        held.push(TcpStream::connect(&address).await.unwrap());
    }
    // The server counts a connection when it accepts it: let it catch up with the backlog.
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut refused = TcpStream::connect(&address).await.unwrap();
    // The write may or may not fail, depending on when the close arrives; the answer is none.
    let _ = refused.write_all(request).await;
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), refused.read(&mut buffer)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "one connection past the share is closed unanswered: {read:?}");
    held.truncate(held.len() - 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (answer, _) = exchange(&address, request, Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 200, "a freed slot is taken again: {answer}");
}
