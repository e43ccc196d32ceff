//! A stream pool's device memory stays flat over 10⁴ batched steps while
//! streams open, close, reset and restore around each other: after a
//! warm-up, no step allocates from the driver and the bytes held (live and
//! pooled) end where they started.

mod common;

use std::sync::Arc;

use recur_nn::{Family, Module, Rng, SequenceLmConfig, StreamId, StreamPool};

#[test]
fn pool_memory_is_flat_over_ten_thousand_churning_steps() {
    let Some(dev) = common::device() else { return };
    // The fused inference step (GRU) and the general one (minGRU).
    for family in [Family::Gru, Family::MinGru] {
        churn(&dev, family);
    }
}

fn churn(dev: &recur_nn::Device, family: Family) {
    let vocab = 7;
    let c = SequenceLmConfig {
        family,
        vocab,
        hidden: 16,
        layers: 1,
        embed: 8,
        dropout: 0.0,
    };
    let lm = c.init(dev, &mut Rng::new(1)).unwrap();
    lm.set_training(false);
    let mut pool = StreamPool::new(Arc::new(lm), dev, 6).unwrap();
    assert_eq!(pool.is_fused(), family == Family::Gru);
    let mut rng = Rng::new(2);
    let mut open: Vec<StreamId> = Vec::new();
    let mut snapshot = None;
    let (warm_up, steps) = (500, 10_000);
    let mut before = None;
    let mut opened = 0;
    let t0 = std::time::Instant::now();
    for step in 0..steps {
        if step == warm_up {
            before = Some(dev.memory_stats());
        }
        // Churn: open until full, close one now and then, reset, snapshot
        // and restore.
        let r = rng.next_f32();
        if open.len() < pool.capacity() && r < 0.3 {
            open.push(pool.open().unwrap());
            opened += 1;
        } else if !open.is_empty() && r > 0.9 {
            let i = (rng.next_f32() * open.len() as f32) as usize % open.len();
            pool.close(open.swap_remove(i)).unwrap();
        } else if let (Some(&id), true) = (open.first(), r > 0.88) {
            pool.reset(id).unwrap();
        } else if let (Some(&id), true) = (open.last(), r > 0.86) {
            match snapshot.take() {
                Some(s) => pool.restore(id, &s).unwrap(),
                None => snapshot = Some(pool.snapshot(id).unwrap()),
            }
        }
        // Every open stream but the newest steps (a masked row each time).
        let n = if open.len() > 1 {
            open.len() - 1
        } else {
            open.len()
        };
        let inputs: Vec<_> = open
            .iter()
            .take(n)
            .map(|&id| (id, (rng.next_f32() * vocab as f32) as u32 % vocab as u32))
            .collect();
        let logits = pool.step(&inputs).unwrap();
        assert_eq!(logits.len(), inputs.len());
        assert!(logits.iter().flatten().all(|x| x.is_finite()));
    }
    let (before, after) = (before.unwrap(), dev.memory_stats());
    eprintln!(
        "{family:?}: {steps} steps, {opened} streams opened, {:.1} s: {before:?} -> {after:?}",
        t0.elapsed().as_secs_f64()
    );
    assert!(opened > 1_000, "the streams churned: {opened} opened");
    assert_eq!(
        after.allocations, before.allocations,
        "no driver allocation after the warm-up"
    );
    assert!(
        after.bytes_live + after.bytes_pooled <= before.bytes_live + before.bytes_pooled,
        "bytes held grew: {before:?} -> {after:?}"
    );
}
