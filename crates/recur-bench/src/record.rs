//! The benchmark record format shared by every suite, and its table view.

use serde::Serialize;

/// One measured kernel configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    /// Suite name (`gemm`, `peak`, ...).
    pub suite: String,
    /// Kernel name; baselines contain `naive` or `unfused`.
    pub name: String,
    /// `fwd`, `fwd+bwd`, or what the suite measures.
    pub mode: String,
    /// Named dimensions, e.g. {"m":1024,"n":1024,"k":1024}.
    pub shape: serde_json::Map<String, serde_json::Value>,
    /// Storage dtype.
    pub dtype: String,
    /// Median time per call in milliseconds: GPU time (timestamps) where the
    /// adapter has them and the call is one submission, else wall clock.
    pub ms_median: f64,
    /// Median wall-clock time per call in milliseconds: recording,
    /// submission, the GPU work and the wait for it, as a user sees it.
    pub wall_ms_median: f64,
    /// Fastest call.
    pub ms_min: f64,
    /// Slowest call.
    pub ms_max: f64,
    /// Floating-point throughput at the median (0 where not meaningful).
    pub gflops: f64,
    /// Memory throughput at the median (0 where not meaningful).
    pub gbps: f64,
    /// Adapter name and backend.
    pub device: String,
    /// Sequence suites: tokens (B·T) processed per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Sequence suites: dispatches recorded per time step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatches_per_step: Option<f64>,
    /// CPU microseconds to record and encode one dispatch (`dispatch` records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub us_per_dispatch: Option<f64>,
}

impl Record {
    /// A record of `name` timed by `t`, with throughputs left at zero (set
    /// them with struct update syntax).
    pub fn timed(
        dev: &recur_gpu::Device,
        [suite, name, mode]: [&str; 3],
        shape: serde_json::Map<String, serde_json::Value>,
        t: &crate::timing::Timing,
    ) -> Self {
        Record {
            suite: suite.into(),
            name: name.into(),
            mode: mode.into(),
            shape,
            dtype: "f32".into(),
            ms_median: t.median(),
            wall_ms_median: t.wall_median(),
            ms_min: t.min(),
            ms_max: t.max(),
            gflops: 0.0,
            gbps: 0.0,
            device: crate::suites::device_name(dev),
            tokens_per_s: None,
            dispatches_per_step: None,
            us_per_dispatch: None,
        }
    }
}

/// Builds a shape object from (name, value) pairs.
pub fn shape(dims: &[(&str, usize)]) -> serde_json::Map<String, serde_json::Value> {
    dims.iter()
        .map(|(k, v)| (k.to_string(), (*v).into()))
        .collect()
}

/// Prints records as an aligned table.
pub fn print_table(records: &[Record]) {
    println!(
        "{:<8} {:<22} {:<8} {:<5} {:<28} {:>10} {:>10} {:>10} {:>10} {:>9} {:>10} {:>6}",
        "suite",
        "name",
        "mode",
        "dtype",
        "shape",
        "ms_median",
        "wall_ms",
        "ms_min",
        "GFLOP/s",
        "GB/s",
        "tokens/s",
        "disp/t"
    );
    for r in records {
        let shape = r
            .shape
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let opt =
            |v: Option<f64>, prec: usize| v.map(|v| format!("{v:.prec$}")).unwrap_or_default();
        println!(
            "{:<8} {:<22} {:<8} {:<5} {:<28} {:>10.3} {:>10.3} {:>10.3} {:>10.2} {:>9.2} {:>10} {:>6}",
            r.suite,
            r.name,
            r.mode,
            r.dtype,
            shape,
            r.ms_median,
            r.wall_ms_median,
            r.ms_min,
            r.gflops,
            r.gbps,
            opt(r.tokens_per_s, 0),
            opt(r.dispatches_per_step, 2)
        );
    }
}
