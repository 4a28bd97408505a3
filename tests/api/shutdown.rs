//! Graceful shutdown: a request in flight when the stop signal arrives still gets its answer.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::helpers::*;

#[tokio::test]
async fn in_flight_requests_finish_after_the_stop_signal() {
    let mut app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = r#"{"members":[{"email":"late@acme.example"}]}"#;
    let (head, tail) = body.split_at(10);
    let sock = TcpStream::connect(&addr).await.unwrap();
    let mut sock = BufReader::new(sock);
    // `Expect: 100-continue` makes the server say when the handler starts reading the body:
    // from then on the request is certainly in flight.
    let request = format!(
        "POST /api/v1/orgs/acme/members HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.get_mut().write_all(request.as_bytes()).await.unwrap();
    let mut line = String::new();
    sock.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    sock.read_line(&mut line).await.unwrap();
    sock.get_mut().write_all(head.as_bytes()).await.unwrap();

    let server = app.stop();
    // Shutdown has begun once the listener is closed.
    wait_for(10, "the listener to close", || {
        let addr = addr.clone();
        async move { TcpStream::connect(&addr).await.is_err() }
    })
    .await;

    sock.get_mut().write_all(tail.as_bytes()).await.unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("late@acme.example"), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops after the request")
        .unwrap()
        .unwrap();
}
