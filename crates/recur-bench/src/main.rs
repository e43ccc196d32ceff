//! `recur-bench`: the shader benchmark harness.
//!
//! ```text
//! cargo run --release -p recur-bench -- peak
//! cargo run --release -p recur-bench -- gemm --json gemm.json
//! cargo run --release -p recur-bench -- scan --json scan.json
//! cargo run --release -p recur-bench -- dispatch
//! cargo run --release -p recur-bench -- attention --quick
//! ```

mod attention;
mod dispatch;
mod mamba;
mod record;
mod rnn;
mod scan;
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
    /// Every suite.
    All,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let dev = Device::new()?;
    eprint!("{}", dev.info());
    let records = match cli.suite {
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
