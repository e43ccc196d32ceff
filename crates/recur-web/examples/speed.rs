//! The page's test-mode run, natively: the same model, text and steps as
//! `web/app.js` with `?test`, so tokens/s in the browser and natively can be
//! compared on one machine. `cargo run --release -p recur-web --example speed
//! [-- MODEL [HIDDEN]]` after `ci/web.sh build` (which writes web/corpus.txt).

use std::time::Instant;

use recur_gpu::Device;
use recur_web::{CharTrainer, TrainerConfig};

fn main() -> recur_gpu::Result<()> {
    let model = std::env::args().nth(1).unwrap_or_else(|| "lstm".into());
    let hidden = std::env::args()
        .nth(2)
        .and_then(|h| h.parse().ok())
        .unwrap_or(64);
    let text = std::fs::read_to_string("web/corpus.txt").unwrap_or_else(|_| {
        let a = include_str!("../../../README.md");
        let b = include_str!("../../../docs/ARCHITECTURE.md");
        format!("{a}{b}")
    });
    // The page keeps the first 200,000 UTF-16 units (JavaScript's slice).
    let units: Vec<u16> = text.encode_utf16().take(200_000).collect();
    let text = String::from_utf16_lossy(&units);
    let dev = Device::new()?;
    let config = TrainerConfig {
        model,
        hidden,
        embed: 32,
        batch: 8,
        window: 32,
        lr: 0.01,
        ..TrainerConfig::default()
    };
    let mut t = CharTrainer::new(&dev, &text, config)?;
    pollster::block_on(t.train_step())?; // builds the pipelines: not timed
    let t0 = Instant::now();
    let mut losses = Vec::new();
    for _ in 0..30 {
        losses.push(pollster::block_on(t.train_step())?);
    }
    let train = 30.0 * t.tokens_per_step() as f64 / t0.elapsed().as_secs_f64();
    pollster::block_on(t.generate("the ", 2, 0.8, 7, |_| ()))?; // pipelines again
    let g0 = Instant::now();
    let sample = pollster::block_on(t.generate("the ", 64, 0.8, 7, |_| ()))?;
    let stream = 64.0 / g0.elapsed().as_secs_f64();
    println!(
        "{} ({} parameters) on {}: loss {:.3} -> {:.3}; training {train:.0} tokens/s; streaming {stream:.1} tokens/s; sample {sample:?}",
        t.config().model,
        t.num_parameters(),
        dev.info().name,
        losses[0],
        losses[29]
    );
    Ok(())
}
