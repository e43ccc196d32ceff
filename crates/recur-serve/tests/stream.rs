//! The WebSocket stream endpoint over loopback: each pushed token is
//! answered with the model's distribution for that stream (equal to the
//! stream run alone in a pool of its own, with another stream interleaved),
//! a reset starts the stream over, bad frames get error frames and leave
//! the stream open, bad queries get 4xx JSON, a closed socket frees its
//! stream, and a shutdown ends open streams.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use recur_nn::StreamPool;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: std::net::SocketAddr, query: &str) -> Ws {
    let url = format!("ws://{addr}/v1/stream?{query}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON frame (failing after 30 s).
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// The softmax of each step's logits for `ids` run alone from zero state.
fn alone(s: &Server, ids: &[u32]) -> Vec<Vec<f32>> {
    let mut pool = StreamPool::new(s.model.lm.clone(), &s.model.device, 1).unwrap();
    let id = pool.open().unwrap();
    ids.iter()
        .map(|&t| {
            let l = pool.step(&[(id, t)]).unwrap().remove(0);
            let top = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = l.iter().map(|x| (x - top).exp()).collect();
            let sum: f32 = e.iter().sum();
            e.iter().map(|x| x / sum).collect()
        })
        .collect()
}

/// Checks `n` step frames against `want` (from step `first`).
async fn expect_steps(ws: &mut Ws, s: &Server, text: &str, want: &[Vec<f32>], first: u64) {
    for (i, (c, p)) in text.chars().zip(want).enumerate() {
        let v = next(ws).await;
        assert_eq!(v["event"], "step", "{v}");
        assert_eq!(v["step"], first + i as u64, "{v}");
        assert_eq!(v["input"], c.to_string(), "{v}");
        let got: Vec<f32> = serde_json::from_value(v["probs"].clone()).unwrap();
        assert_eq!(got.len(), p.len());
        for (g, w) in got.iter().zip(p) {
            assert!((g - w).abs() < 1e-4, "step {i}: {g} vs {w}");
        }
        // Temperature 0 samples the most likely token.
        let argmax = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        assert_eq!(v["id"], argmax, "{v}");
        assert_eq!(v["text"], s.model.vocab[argmax].to_string());
    }
}

#[test]
fn a_stream_answers_each_token_with_its_distribution_and_resets() {
    let Some(dev) = device() else { return };
    let s = start(&dev, "ws_steps", settings(3, 4));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let q = "output=probs&temperature=0";
        let (mut a, mut b) = (connect(s.addr, q).await, connect(s.addr, q).await);
        let (ta, tb) = ("abcab hg", "hhh.\nfed");
        let enc = |t: &str| s.model.encode(t).unwrap();
        let (pa, pb) = (alone(&s, &enc(ta)), alone(&s, &enc(tb)));
        // Interleaved pushes: each stream sees only its own tokens.
        send(&mut a, json!({"text": &ta[..3]})).await;
        send(&mut b, json!({"text": tb})).await;
        send(&mut a, json!({"ids": enc(&ta[3..])})).await;
        expect_steps(&mut b, &s, tb, &pb, 1).await;
        expect_steps(&mut a, &s, ta, &pa, 1).await;
        // A reset (then tokens in the same frame) starts over.
        send(&mut a, json!({"reset": true, "text": "ab"})).await;
        assert_eq!(next(&mut a).await["event"], "reset");
        expect_steps(&mut a, &s, "ab", &pa[..2], 1).await;
        assert_eq!(active(s.addr), 2);
        a.close(None).await.unwrap();
        b.close(None).await.unwrap();
    });
    let t0 = Instant::now();
    while active(s.addr) != 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "streams not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(s);
}

#[test]
fn bad_frames_and_queries_are_refused_and_shutdown_ends_streams() {
    let Some(dev) = device() else { return };
    let s = start(&dev, "ws_bad", settings(2, 2));
    for (path, want) in [
        ("/v1/stream?output=bogus", 400),
        ("/v1/stream?temperature=-1", 400),
        ("/v1/stream?top_k=0", 400),
        ("/v1/stream?extra=1", 400),
        ("/v1/stream?model=transformer", 404),
    ] {
        let (status, b) = http(s.addr, "GET", path, "");
        assert_eq!(status, want, "{path}: {b}");
        assert!(serde_json::from_str::<Value>(&b).unwrap()["error"].is_string());
    }
    // Not a WebSocket handshake.
    let (status, b) = http(s.addr, "GET", "/v1/stream", "");
    assert!((400..500).contains(&status), "{status}: {b}");
    assert!(serde_json::from_str::<Value>(&b).unwrap()["error"].is_string());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stopper = rt.block_on(async {
        let mut ws = connect(s.addr, "seed=3").await;
        let long = "a".repeat(65);
        let frames = [
            Message::Text("{not json".into()),
            Message::Text(r#"{"text": "xyz"}"#.into()),
            Message::Text(r#"{"ids": [99]}"#.into()),
            Message::Text("{}".into()),
            Message::Text(r#"{"text": "a", "ids": [1]}"#.into()),
            Message::Text(r#"{"text": "a", "extra": 1}"#.into()),
            Message::Text(json!({ "text": long }).to_string().into()),
            Message::Binary(vec![1, 2, 3].into()),
        ];
        for f in frames {
            let shown = format!("{f:?}");
            ws.send(f).await.unwrap();
            let v = next(&mut ws).await;
            assert_eq!(v["event"], "error", "{shown}: {v}");
            assert!(v["error"].is_string(), "{shown}: {v}");
        }
        // The stream is still open and starts from step 1.
        send(&mut ws, json!({"text": "ab"})).await;
        for step in 1..=2 {
            let v = next(&mut ws).await;
            assert_eq!(
                (v["event"].as_str(), v["step"].as_u64()),
                (Some("step"), Some(step))
            );
            assert!(v.get("probs").is_none(), "output=sample: {v}");
        }
        // A shutdown ends the open stream.
        let stopper = std::thread::spawn(move || stop(s));
        let v = next(&mut ws).await;
        assert_eq!(
            (v["event"].as_str(), v["reason"].as_str()),
            (Some("done"), Some("shutdown")),
            "{v}"
        );
        stopper
    });
    stopper.join().unwrap();
}
