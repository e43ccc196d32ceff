//! The `dispatch` suite: the CPU cost of recording and encoding one
//! dispatch, with bind groups cached (the default) and rebuilt for every
//! dispatch. The workload is a stepped LSTM forward at batch 1 (one fused
//! dispatch per step over the same buffers), where that cost is the floor
//! of a token's latency.

use std::time::Instant;

use recur_gpu::ops::rnn::{rnn_forward_run, Cell, RnnRun, RnnStrategy, RnnWeights};
use recur_gpu::{Device, DeviceOptions, Rng, Tensor};

use crate::record::{shape, Record};
use crate::timing::Timing;

fn measure_cpu(dev: &Device, runs: usize, cached: bool) -> anyhow::Result<Record> {
    let (i, h, b, t) = (32, 32, 1, 512);
    let mut rng = Rng::new(11);
    let w_ih = Tensor::rand(dev, &[4 * h, i], -0.2, 0.2, &mut rng)?;
    let w_hh = Tensor::rand(dev, &[4 * h, h], -0.2, 0.2, &mut rng)?;
    let x = Tensor::rand(dev, &[t, b, i], -1.0, 1.0, &mut rng)?;
    let w = RnnWeights {
        w_ih: &w_ih,
        w_hh: &w_hh,
        b_ih: None,
        b_hh: None,
    };
    let run = RnnRun {
        strategy: RnnStrategy::Stepped,
        ..RnnRun::new(Cell::Lstm)
    };
    let forward = || rnn_forward_run(&run, &w, &x, None, None);
    forward()?;
    dev.sync()?;
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    let mut dispatches = 0;
    for _ in 0..runs.max(5) {
        let before = dev.counters().dispatches;
        let start = Instant::now();
        let out = forward()?;
        dev.flush()?;
        cpu.push(start.elapsed().as_secs_f64() * 1e3);
        dev.sync()?;
        wall.push(start.elapsed().as_secs_f64() * 1e3);
        dispatches = dev.counters().dispatches - before;
        drop(out);
    }
    cpu.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    let tm = Timing { samples: cpu, wall };
    let us = tm.median() * 1e3 / dispatches as f64;
    let name = if cached {
        "record_dispatch"
    } else {
        "record_dispatch_uncached"
    };
    eprintln!(
        "{name}: {us:.2} µs per dispatch ({dispatches} dispatches, recording + encoding + submit)"
    );
    let dims = shape(&[("i", i), ("h", h), ("b", b), ("t", t)]);
    Ok(Record {
        us_per_dispatch: Some(us),
        dispatches_per_step: Some(dispatches as f64 / t as f64),
        ..Record::timed(dev, ["dispatch", name, "cpu"], dims, &tm)
    })
}

/// The suite: cached and uncached bind groups on two devices of the same adapter.
pub fn dispatch(dev: &Device, runs: usize) -> anyhow::Result<Vec<Record>> {
    let options = DeviceOptions {
        cache_bind_groups: false,
        ..DeviceOptions::from_env()?
    };
    let uncached = pollster::block_on(Device::with_options(options))?;
    Ok(vec![
        measure_cpu(dev, runs, true)?,
        measure_cpu(&uncached, runs, false)?,
    ])
}
