//! `recur-serve --checkpoint PATH --addr HOST:PORT`: serves a `char_lm`
//! checkpoint (any model family). See the crate documentation.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use recur_gpu::Device;
use recur_serve::http::Limits;
use recur_serve::model::Loaded;
use recur_serve::{serve, Settings};

#[derive(Parser)]
#[command(about = "Serve a recur char_lm checkpoint over HTTP (server-sent events)")]
struct Args {
    /// A `char_lm --checkpoint` file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Streams generated at once.
    #[arg(long, default_value_t = 64)]
    streams: usize,
    /// Requests that may wait for a stream.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Characters in a prompt.
    #[arg(long, default_value_t = 4096)]
    max_prompt: usize,
    /// Tokens one request may ask for.
    #[arg(long, default_value_t = 4096)]
    max_tokens: usize,
    /// Store an LSTM/GRU/RNN's step weights as f16 where the adapter has
    /// SHADER_F16 (f32 otherwise).
    #[arg(long)]
    f16: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = Device::new().context("no GPU adapter")?;
    let model = Arc::new(Loaded::load(&args.checkpoint, &device)?);
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    eprintln!(
        "recur-serve: {} ({} characters) on http://{} ({})",
        model.name(),
        model.vocab.len(),
        listener.local_addr()?,
        device.info().to_string().lines().next().unwrap_or_default()
    );
    let settings = Settings {
        streams: args.streams,
        queue: args.queue,
        limits: Limits {
            max_prompt: args.max_prompt,
            max_tokens: args.max_tokens,
        },
        half_weights: args.f16,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("recur-serve: shutting down");
    };
    serve(listener, model, settings, shutdown).await
}
