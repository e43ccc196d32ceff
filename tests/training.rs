//! End to end at small scale: embedding → 2-layer LSTM → linear →
//! cross-entropy, backward by hand, AdamW with global-norm clipping, truncated
//! BPTT with the state carried across windows (tests/common). A periodic
//! sequence whose next symbol depends on the direction of travel (so the
//! model needs memory) must be learnt.

mod common;

use common::{fresh, train_on, B, T, V};

#[test]
fn a_small_lstm_language_model_learns_a_periodic_sequence() {
    let Some(dev) = common::device() else { return };
    // 0 1 2 .. V-1 V-2 .. 1 0 1 ..: after 2 comes 3 or 1 depending on the past.
    let period: Vec<u32> = (0..V as u32).chain((1..V as u32 - 1).rev()).collect();
    let per_stream = 600;
    let seq: Vec<u32> = (0..per_stream * B)
        .map(|i| period[i % period.len()])
        .collect();
    let mut run = fresh(&dev);
    let mut losses = Vec::new();
    for step in 0..150 {
        let pos = (step * T) % (per_stream - T - 1);
        if pos < T {
            (run.h, run.c) = (None, None);
        }
        let (mut ids, mut tg) = (Vec::new(), Vec::new());
        for s in 0..T {
            for k in 0..B {
                ids.push(seq[k * per_stream + pos + s]);
                tg.push(seq[k * per_stream + pos + s + 1]);
            }
        }
        losses.push(train_on(&dev, &mut run, &ids, &tg));
    }
    let first = losses[..5].iter().sum::<f32>() / 5.0;
    let last = losses[losses.len() - 10..].iter().sum::<f32>() / 10.0;
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(first > 1.2, "starts near ln {V}: {first}");
    assert!(
        last < 0.5,
        "did not learn the pattern: {first} -> {last} ({losses:?})"
    );
}

/// Forward, backward, clipping and the optimizer update of a step are
/// recorded into one submission, made when the loss is read back.
#[test]
fn a_training_step_is_one_submission_and_one_readback() {
    let Some(dev) = common::device() else { return };
    let mut run = fresh(&dev);
    for _ in 0..3 {
        common::train_step(&dev, &mut run);
    }
    let (ids, tg) = common::step_data(run.step);
    dev.sync().unwrap();
    let before = dev.counters();
    let loss = common::record_step(&dev, &mut run, &ids, &tg);
    let recorded = dev.counters();
    assert_eq!(
        recorded.submissions, before.submissions,
        "recording a step must not submit"
    );
    assert!(
        recorded.dispatches > before.dispatches + 20,
        "forward, backward, clipping and Adam: {before:?} -> {recorded:?}"
    );
    assert!(loss.item().unwrap().is_finite());
    assert_eq!(
        dev.counters().submissions,
        before.submissions + 1,
        "the loss readback submits the whole step once"
    );
}
