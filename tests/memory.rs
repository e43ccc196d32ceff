//! GPU memory does not grow over 1,000 training steps: every buffer a step
//! allocates returns to the pool and is reused by the next step.

mod common;

use common::{fresh, train_step};
use recur::gpu::Device;

#[test]
fn memory_is_flat_over_a_thousand_training_steps() {
    let Some(_) = common::device() else { return };
    let dev = Device::new().unwrap(); // its own pool and counters
    let mut run = fresh(&dev);
    for _ in 0..20 {
        train_step(&dev, &mut run);
    }
    dev.sync().unwrap();
    let warm = dev.memory_stats();
    for _ in 0..1000 {
        train_step(&dev, &mut run);
    }
    dev.sync().unwrap();
    let after = dev.memory_stats();
    assert_eq!(
        after.bytes_live, warm.bytes_live,
        "live GPU memory grew: {warm:?} -> {after:?}"
    );
    assert!(
        after.bytes_peak <= warm.bytes_peak + (1 << 20),
        "peak grew: {warm:?} -> {after:?}"
    );
    assert!(
        after.allocations <= warm.allocations + 8,
        "the pool stopped reusing buffers: {warm:?} -> {after:?}"
    );
}
