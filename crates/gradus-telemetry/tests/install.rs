//! The installed telemetry of a binary: JSONL file and Prometheus endpoint fed by the same
//! `metrics` calls. (One test per file: a process has one global recorder.)

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use gradus_telemetry::Telemetry;

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn scrape(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn metrics_reach_the_jsonl_file_and_the_prometheus_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run").join("metrics.jsonl");
    let addr = free_port();
    let telemetry = Telemetry::install("tokenize", &path, Some(addr)).unwrap();
    metrics::counter!("docs_encoded", "split" => "train").increment(41);
    metrics::counter!("docs_encoded", "split" => "train").increment(1);
    telemetry.flush().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["stage"], "tokenize");
    assert_eq!(last["value"], 42.0);

    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        match scrape(addr) {
            Some(body) if body.contains("docs_encoded") => break body,
            _ if Instant::now() > deadline => panic!("no scrape from {addr}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert!(body.contains("docs_encoded{split=\"train\"} 42"), "{body}");

    // A second recorder in one process is refused, not silently ignored.
    let again = Telemetry::install("x", &dir.path().join("m2.jsonl"), None);
    assert!(again.is_err());
}
