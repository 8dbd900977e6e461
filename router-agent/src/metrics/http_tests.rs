//! The endpoint over real TCP on loopback, with a stand-in event loop.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Endpoint, serve};
use crate::metrics::{MetricsConfig, Snapshot};

async fn start() -> Endpoint {
    let config = MetricsConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
    };
    serve(&config, "/nonexistent/pins".into())
        .await
        .unwrap()
        .expect("listening")
}

async fn request(endpoint: &Endpoint, text: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(endpoint.address)
        .await
        .unwrap();
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn get_metrics_asks_the_event_loop_and_renders() {
    let mut endpoint = start().await;
    let address = endpoint.address;
    let event_loop = tokio::spawn(async move {
        let scrape = endpoint.next().await.unwrap();
        let _ = scrape.send(Snapshot {
            batches_applied: 7,
            ..Snapshot::default()
        });
        endpoint
    });
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("Content-Type: text/plain; version=0.0.4"));
    assert!(
        response.contains("\nhostrouter_fib_batches_applied_total 7"),
        "{response}"
    );
    event_loop.await.unwrap();
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let endpoint = start().await;
    let response = request(&endpoint, "GET / HTTP/1.1\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
    let response = request(&endpoint, "POST /metrics HTTP/1.1\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 405 "), "{response}");
    let response = request(&endpoint, "\u{1}\u{2}garbage\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
}

#[tokio::test]
async fn an_event_loop_gone_is_a_503_not_a_hang() {
    let endpoint = start().await;
    let address = endpoint.address;
    // The agent stopping: nobody takes the scrape.
    drop(endpoint);
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut response))
        .await
        .expect("answered")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
}

#[tokio::test]
async fn no_listen_no_endpoint() {
    let endpoint = serve(&MetricsConfig::default(), "/nonexistent".into()).await;
    assert!(endpoint.unwrap().is_none());
}

#[tokio::test]
async fn a_taken_port_names_the_key() {
    let first = start().await;
    let config = MetricsConfig {
        listen: Some(first.address),
    };
    let err = serve(&config, "/nonexistent".into()).await.err().unwrap();
    assert!(format!("{err:#}").contains("metrics.listen"), "{err:#}");
}
