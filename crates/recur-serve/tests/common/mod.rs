//! What the loopback tests share: a tiny checkpoint, a server on an
//! ephemeral port, raw HTTP/1.1 exchanges.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use recur_gpu::Device;
use recur_nn::checkpoint;
use recur_nn::{Family, Module, Rng, SequenceLmConfig};
use recur_serve::http::Limits;
use recur_serve::model::Loaded;
use recur_serve::{serve, Settings};

/// A device, or `None` (the test is skipped) where no adapter exists; under
/// CI (`CI=true`) a missing adapter fails instead.
pub fn device() -> Option<Device> {
    match Device::new() {
        Ok(d) => Some(d),
        Err(e) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but no adapter: {e}"
            );
            None
        }
    }
}

pub const VOCAB: &str = "abcdefgh .,\n";

/// A tiny GRU char model saved as `char_lm` saves one.
pub fn checkpoint_file(dev: &Device, name: &str) -> PathBuf {
    let config = SequenceLmConfig {
        family: Family::Gru,
        vocab: VOCAB.chars().count(),
        hidden: 16,
        layers: 1,
        embed: 8,
        dropout: 0.0,
    };
    let lm = config.init(dev, &mut Rng::new(3)).unwrap();
    let params = lm.named_parameters();
    let tensors: Vec<(String, &recur_gpu::Tensor)> =
        params.iter().map(|(n, v)| (n.clone(), v.value())).collect();
    let mut meta: HashMap<String, String> = config.metadata().into_iter().collect();
    meta.insert("vocab".into(), VOCAB.into());
    let path = std::env::temp_dir().join(format!(
        "recur_serve_{name}_{}.safetensors",
        std::process::id()
    ));
    checkpoint::save(&path, &tensors, &meta).unwrap();
    path
}

pub struct Server {
    pub addr: SocketAddr,
    pub model: Arc<Loaded>,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub done: std::sync::mpsc::Receiver<()>,
}

pub fn start(dev: &Device, name: &str, settings: Settings) -> Server {
    let model = Arc::new(Loaded::load(&checkpoint_file(dev, name), dev).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (done_tx, done) = std::sync::mpsc::channel();
    let m = model.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, m, settings, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let _ = done_tx.send(());
    });
    Server {
        addr: addr_rx.recv().unwrap(),
        model,
        stop: Some(stop),
        done,
    }
}

/// One HTTP/1.1 exchange (Connection: close): status and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let out = read_to_end(&mut s, Duration::from_secs(60));
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Everything until the server closes, failing past `limit` (server-sent
/// keep-alives would otherwise keep a stuck read alive).
pub fn read_to_end(s: &mut TcpStream, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
        let text = String::from_utf8_lossy(&out);
        assert!(
            Instant::now() < deadline,
            "no end after {limit:?}: {}",
            &text[text.len().saturating_sub(300)..]
        );
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn settings(streams: usize, queue: usize) -> Settings {
    Settings {
        streams,
        queue,
        limits: Limits {
            max_prompt: 64,
            max_tokens: 1_000_000,
        },
        half_weights: false,
    }
}

pub fn stop(mut s: Server) {
    let _ = s.stop.take().unwrap().send(());
    s.done
        .recv_timeout(Duration::from_secs(30))
        .expect("the server stops");
}

pub fn active(addr: SocketAddr) -> u64 {
    let (_, b) = http(addr, "GET", "/health", "");
    serde_json::from_str::<serde_json::Value>(&b).unwrap()["active_streams"]
        .as_u64()
        .unwrap()
}
