//! The engine's encoding: bind groups are built once per pipeline and
//! buffer ranges (a recurrence of T steps does not build T of them), and
//! the results do not depend on the cache.

mod common;

use common::{data, upload};
use recur_gpu::ops::rnn::{rnn_forward_run, Cell, RnnRun, RnnStrategy, RnnWeights};
use recur_gpu::{Device, DeviceOptions, Tensor};

fn lstm_steps(dev: &Device, t: usize) -> (Vec<f32>, u64, u64) {
    let (b, i, h) = (2, 3, 5);
    let w_ih = upload(dev, &data(4 * h * i, 1), &[4 * h, i]);
    let w_hh = upload(dev, &data(4 * h * h, 2), &[4 * h, h]);
    let w = RnnWeights {
        w_ih: &w_ih,
        w_hh: &w_hh,
        b_ih: None,
        b_hh: None,
    };
    let x = upload(dev, &data(t * b * i, 3), &[t, b, i]);
    let run = RnnRun {
        strategy: RnnStrategy::Stepped,
        ..RnnRun::new(Cell::Lstm)
    };
    dev.sync().unwrap();
    let before = dev.counters();
    let out: Tensor = rnn_forward_run(&run, &w, &x, None, None).unwrap().output;
    let values = out.to_vec().unwrap();
    let after = dev.counters();
    (
        values,
        after.dispatches - before.dispatches,
        after.bind_groups - before.bind_groups,
    )
}

#[test]
fn a_recurrence_builds_its_bind_groups_once() {
    let Some(dev) = common::device() else { return };
    let t = 64;
    let (cached, dispatches, groups) = lstm_steps(&dev, t);
    assert!(
        dispatches >= t as u64,
        "{dispatches} dispatches for {t} steps"
    );
    // The T step dispatches share one bind group; the rest (projection,
    // transposes, state setup, output slices) a handful.
    assert!(
        groups <= 12,
        "{groups} bind groups for {dispatches} dispatches"
    );

    let options = DeviceOptions {
        cache_bind_groups: false,
        ..DeviceOptions::from_env().unwrap()
    };
    let uncached_dev = pollster::block_on(Device::with_options(options)).unwrap();
    let (uncached, dispatches2, groups2) = lstm_steps(&uncached_dev, t);
    assert_eq!(dispatches2, dispatches);
    assert_eq!(
        groups2, dispatches2,
        "without the cache every dispatch builds one"
    );
    assert_eq!(cached, uncached, "the cache changes no result");
}
