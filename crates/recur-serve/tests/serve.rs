//! recur-serve over loopback: deterministic generation equal to the
//! library's sampler, concurrent clients that do not interfere, every bad
//! request answered with a 4xx JSON error, a vanishing client's stream
//! freed, a full queue refused, and a graceful shutdown.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use recur_nn::Rng;

/// The text of a generation's token events and its done reason.
fn tokens(sse: &str) -> (String, String) {
    let mut text = String::new();
    let mut reason = String::new();
    let mut event = "";
    for line in sse.lines() {
        if let Some(e) = line.strip_prefix("event: ") {
            event = if e == "token" { "token" } else { "done" };
        } else if let Some(d) = line.strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            match event {
                "token" => text.push_str(v["text"].as_str().unwrap()),
                _ => reason = v["reason"].as_str().unwrap().to_string(),
            }
        }
    }
    (text, reason)
}

fn generate(addr: SocketAddr, prompt: &str, n: usize, seed: u64) -> (String, String) {
    let body =
        serde_json::json!({"prompt": prompt, "max_tokens": n, "temperature": 0.8, "seed": seed});
    let (status, b) = http(addr, "POST", "/v1/generate", &body.to_string());
    assert_eq!(status, 200, "{b}");
    tokens(&b)
}

/// What the library's sampler gives for the same request.
fn expected(s: &Server, prompt: &str, n: usize, seed: u64) -> String {
    let ids = s.model.encode(prompt).unwrap();
    let out = s
        .model
        .lm
        .generate(&s.model.device, &ids, n, (0.8, None), &mut Rng::new(seed))
        .unwrap();
    out.iter().map(|&i| s.model.vocab[i as usize]).collect()
}

#[test]
fn generation_is_deterministic_and_concurrent_clients_do_not_interfere() {
    let Some(dev) = device() else { return };
    let s = start(&dev, "gen", settings(3, 16));
    let (a, reason) = generate(s.addr, "ab", 20, 5);
    assert_eq!(reason, "length");
    assert_eq!(a.chars().count(), 20);
    assert_eq!(generate(s.addr, "ab", 20, 5).0, a, "same seed, same text");
    assert_eq!(a, expected(&s, "ab", 20, 5), "the library's sampler");
    // Six clients at once on three streams (three wait in the queue).
    let addr = s.addr;
    let handles: Vec<_> = (0..6u64)
        .map(|i| std::thread::spawn(move || generate(addr, "bead fa", 15 + i as usize, 100 + i)))
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let (text, reason) = h.join().unwrap();
        assert_eq!(reason, "length");
        assert_eq!(
            text,
            expected(&s, "bead fa", 15 + i, 100 + i as u64),
            "client {i}"
        );
    }
    let (status, m) = http(s.addr, "GET", "/metrics", "");
    assert_eq!(status, 200);
    for name in [
        "recur_tokens_total",
        "recur_active_streams 0",
        "recur_queue_depth 0",
        "recur_step_seconds_bucket",
    ] {
        assert!(m.contains(name), "{name} in {m}");
    }
    stop(s);
}

#[test]
fn bad_requests_get_json_errors_and_leave_the_server_healthy() {
    let Some(dev) = device() else { return };
    let s = start(&dev, "bad", settings(2, 4));
    let long = "a".repeat(65);
    let cases = [
        ("{not json", 400),
        (r#"{"prompt": "ab"}"#, 400),
        (
            r#"{"prompt": "ab", "max_tokens": 3, "model": "transformer"}"#,
            404,
        ),
        (
            &format!(r#"{{"prompt": "{long}", "max_tokens": 3}}"#) as &str,
            413,
        ),
        (r#"{"prompt": "", "max_tokens": 3}"#, 413),
        (r#"{"prompt": "ab", "max_tokens": 0}"#, 400),
        (r#"{"prompt": "ab", "max_tokens": 1000001}"#, 400),
        (
            r#"{"prompt": "ab", "max_tokens": 3, "temperature": -1}"#,
            400,
        ),
        (r#"{"prompt": "ab", "max_tokens": 3, "top_k": 0}"#, 400),
        (r#"{"prompt": "xyz", "max_tokens": 3}"#, 400),
        (r#"{"prompt": "ab", "max_tokens": 3, "extra": 1}"#, 400),
    ];
    for (body, want) in cases {
        let (status, b) = http(s.addr, "POST", "/v1/generate", body);
        assert_eq!(status, want, "{body}: {b}");
        let v: serde_json::Value =
            serde_json::from_str(&b).unwrap_or_else(|_| panic!("{body}: {b}"));
        assert!(v["error"].is_string(), "{body}: {b}");
    }
    let (status, b) = http(s.addr, "GET", "/health", "");
    assert_eq!(status, 200, "{b}");
    assert!(b.contains("\"gru\""), "{b}");
    assert_eq!(generate(s.addr, "ab", 5, 1).1, "length");
    stop(s);
}

/// Opens a long generation and returns its socket once a token arrived.
fn open_long(addr: SocketAddr, n: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = serde_json::json!({"prompt": "ab", "max_tokens": n}).to_string();
    write!(
        s,
        "POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(std::str::from_utf8(&buf[..n])
        .unwrap()
        .starts_with("HTTP/1.1 200"));
    s
}

#[test]
fn a_vanished_client_frees_its_stream_a_full_queue_is_refused_and_shutdown_ends_streams() {
    let Some(dev) = device() else { return };
    let s = start(&dev, "churn", settings(1, 1));
    let a = open_long(s.addr, 1_000_000);
    // A holds the only stream (its response can start before it gets one:
    // wait until it has), B waits in the queue, C is refused.
    let t0 = Instant::now();
    while active(s.addr) != 1 {
        assert!(t0.elapsed() < Duration::from_secs(20), "A never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let addr = s.addr;
    let b = std::thread::spawn(move || generate(addr, "ab", 4, 2));
    let t0 = Instant::now();
    loop {
        let (_, h) = http(s.addr, "GET", "/health", "");
        if h.contains("\"queue_depth\":1") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "B never queued: {h}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = r#"{"prompt": "ab", "max_tokens": 3}"#;
    let (status, e) = http(s.addr, "POST", "/v1/generate", body);
    assert_eq!(status, 429, "{e}");
    // A leaves: its stream goes to B, which completes.
    drop(a);
    let (text, reason) = b.join().unwrap();
    assert_eq!((text.chars().count(), reason.as_str()), (4, "length"));
    let t0 = Instant::now();
    while active(s.addr) != 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "A's stream was never freed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Shutdown while a long generation runs: it ends with "shutdown".
    let mut c = open_long(s.addr, 1_000_000);
    let stopper = std::thread::spawn(move || stop(s));
    let rest = read_to_end(&mut c, Duration::from_secs(30));
    assert!(
        rest.contains("shutdown"),
        "{}",
        &rest[rest.len().saturating_sub(300)..]
    );
    stopper.join().unwrap();
}
