//! `recur-bench`: the shader benchmark harness.
//!
//! ```text
//! cargo run --release -p recur-bench -- peak
//! cargo run --release -p recur-bench -- gemm --json gemm.json
//! cargo run --release -p recur-bench -- scan --json scan.json
//! cargo run --release -p recur-bench -- dispatch
//! cargo run --release -p recur-bench -- attention --quick
//! cargo run --release -p recur-bench -- serve --clients 1,16,256 --json serve.json
//! cargo run --release -p recur-bench -- pool --steps 1000000
//! ```

mod attention;
mod dispatch;
mod mamba;
mod pool;
mod record;
mod rnn;
mod scan;
mod serve;
mod suites;
mod timing;

use clap::{Parser, Subcommand};
use recur_gpu::Device;

#[derive(Parser)]
#[command(about = "Benchmarks recur's kernels on the current adapter")]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
    /// Write the records as a JSON array to this path.
    #[arg(long, global = true)]
    json: Option<std::path::PathBuf>,
    /// Timed runs per configuration (median reported; at least 5).
    #[arg(long, global = true, default_value_t = 7)]
    runs: usize,
    /// Fewer shapes, for a fast check.
    #[arg(long, global = true)]
    quick: bool,
}

#[derive(Subcommand)]
enum Suite {
    /// The adapter's FMA throughput and copy bandwidth.
    Peak,
    /// GEMM, tiled vs naive.
    Gemm,
    /// Fused LSTM/GRU vs the unfused baseline, forward and forward+backward.
    Rnn,
    /// The linear/log scan core (forward, backward; serial and chunked), and
    /// minGRU vs the fused GRU.
    Scan,
    /// The CPU cost of recording and encoding one dispatch, with bind
    /// groups cached and not.
    Dispatch,
    /// Mamba's selective scan (forward, forward+backward) and a Mamba block.
    Mamba,
    /// Chunked linear attention (linear, RetNet, Mamba-2's SSD, GLA),
    /// forward, forward+backward and the recurrent form.
    Attention,
    /// A load generator against an in-process recur-serve on loopback:
    /// tokens/s, time per token (p50, p99), errors, memory, per number of
    /// concurrent clients (not part of `all`).
    Serve {
        /// Concurrent clients, comma-separated, one level each.
        #[arg(long, default_value = "1,16,256")]
        clients: String,
        /// Seconds each level issues requests.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// The served family (random weights; speed does not depend on them).
        #[arg(long, default_value = "gru")]
        model: String,
        /// Hidden size (char_lm's default).
        #[arg(long, default_value_t = 256)]
        hidden: usize,
        /// Layers.
        #[arg(long, default_value_t = 2)]
        layers: usize,
        /// Embedding width.
        #[arg(long, default_value_t = 64)]
        embed: usize,
        /// The server's pool (recur-serve --streams).
        #[arg(long, default_value_t = 256)]
        streams: usize,
        /// Tokens per request.
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
        /// The fused step's weights in f16 (recur-serve --f16).
        #[arg(long)]
        f16: bool,
    },
    /// A stream pool's device memory and RSS over a long run of churning
    /// streams (not part of `all`).
    Pool {
        /// Batched steps.
        #[arg(long, default_value_t = 1_000_000)]
        steps: usize,
        /// The pool's streams.
        #[arg(long, default_value_t = 16)]
        streams: usize,
        /// The family (random weights).
        #[arg(long, default_value = "gru")]
        model: String,
        /// Hidden size.
        #[arg(long, default_value_t = 64)]
        hidden: usize,
    },
    /// Every suite.
    All,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let dev = Device::new()?;
    eprint!("{}", dev.info());
    let records = match cli.suite {
        Suite::Serve { .. } => return run_serve(&dev, &cli),
        Suite::Pool { .. } => return run_pool(&dev, &cli),
        Suite::Peak => suites::peak(&dev, cli.runs)?,
        Suite::Gemm => suites::gemm(&dev, cli.runs, cli.quick)?,
        Suite::Rnn => rnn::rnn(&dev, cli.runs, cli.quick)?,
        Suite::Scan => scan::scan(&dev, cli.runs, cli.quick)?,
        Suite::Dispatch => dispatch::dispatch(&dev, cli.runs)?,
        Suite::Mamba => mamba::mamba(&dev, cli.runs, cli.quick)?,
        Suite::Attention => attention::attention(&dev, cli.runs, cli.quick)?,
        Suite::All => {
            let mut r = suites::peak(&dev, cli.runs)?;
            r.extend(suites::gemm(&dev, cli.runs, cli.quick)?);
            r.extend(rnn::rnn(&dev, cli.runs, cli.quick)?);
            r.extend(scan::scan(&dev, cli.runs, cli.quick)?);
            r.extend(dispatch::dispatch(&dev, cli.runs)?);
            r.extend(mamba::mamba(&dev, cli.runs, cli.quick)?);
            r.extend(attention::attention(&dev, cli.runs, cli.quick)?);
            r
        }
    };
    record::print_table(&records);
    for (class, kernel) in dev.tuned() {
        eprintln!("tuned: {class} -> {kernel}");
    }
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&records)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `recur-bench serve`.
fn run_serve(dev: &Device, cli: &Cli) -> anyhow::Result<()> {
    let Suite::Serve {
        clients,
        seconds,
        model,
        hidden,
        layers,
        embed,
        streams,
        max_tokens,
        f16,
    } = &cli.suite
    else {
        return Ok(());
    };
    let levels = clients
        .split(',')
        .map(|c| c.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--clients {clients:?}: {e}"))?;
    let load = serve::Load {
        levels,
        seconds: if cli.quick {
            seconds.min(3.0)
        } else {
            *seconds
        },
        config: recur_nn::SequenceLmConfig {
            family: recur_nn::Family::parse(model)?,
            vocab: 0,
            hidden: *hidden,
            layers: *layers,
            embed: *embed,
            dropout: 0.0,
        },
        streams: *streams,
        max_tokens: *max_tokens,
        half_weights: *f16,
    };
    let records = serve::serve(dev, &load)?;
    serve::print_table(&records);
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&records)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `recur-bench pool`.
fn run_pool(dev: &Device, cli: &Cli) -> anyhow::Result<()> {
    let Suite::Pool {
        steps,
        streams,
        model,
        hidden,
    } = &cli.suite
    else {
        return Ok(());
    };
    let config = recur_nn::SequenceLmConfig {
        family: recur_nn::Family::parse(model)?,
        vocab: 96,
        hidden: *hidden,
        layers: 2,
        embed: 32,
        dropout: 0.0,
    };
    let r = pool::pool(dev, config, *streams, *steps)?;
    // The first sample after the start (the warm-up) against the last.
    let (Some(a), Some(b)) = (r.samples.get(1).or(r.samples.first()), r.samples.last()) else {
        return Ok(());
    };
    println!(
        "pool {} x{}: {} steps at {:.0}/s; device bytes {} -> {}, allocations {} -> {} (from step {}), RSS {} -> {} MB",
        r.model,
        r.capacity,
        r.steps,
        r.steps_per_s,
        a.device_bytes,
        b.device_bytes,
        a.allocations,
        b.allocations,
        a.step,
        a.rss >> 20,
        b.rss >> 20
    );
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
