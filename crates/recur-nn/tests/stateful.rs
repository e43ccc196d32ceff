//! The one stateful API: every layer family, as a language model
//! (`SequenceLm`), runs a sequence in one call, in two calls carrying the
//! state, and token by token, with the same outputs; a stream pool's
//! streams equal the same streams run alone.

mod common;

use recur_nn::{
    no_grad, Device, Error, Family, Module, Rng, SequenceLm, SequenceLmConfig, State, StreamPool,
    Tensor,
};
use std::sync::Arc;

const VOCAB: usize = 11;

fn model(dev: &Device, family: Family, seed: u64) -> SequenceLm {
    let c = SequenceLmConfig {
        family,
        vocab: VOCAB,
        hidden: 32,
        layers: 2,
        embed: 8,
        dropout: 0.0,
    };
    let m = c.init(dev, &mut Rng::new(seed)).unwrap();
    m.set_training(false);
    m
}

fn tokens(n: usize, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| (r.next_f32() * VOCAB as f32) as u32 % VOCAB as u32)
        .collect()
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tol,
        "{what}: worst relative error {worst:e} > {tol:e}"
    );
}

/// Logits (B, T, V) as rows per (b, t).
fn logits(
    m: &SequenceLm,
    dev: &Device,
    ids: &[u32],
    b: usize,
    state: Option<&State>,
) -> (Vec<f32>, State) {
    let t = ids.len() / b;
    let x = Tensor::from_slice_u32(dev, ids, &[b, t]).unwrap();
    let (y, s) = m.forward_state(&x, state).unwrap();
    assert_eq!(y.shape(), [b, t, VOCAB]);
    (y.to_vec().unwrap(), s)
}

/// Columns t0..t1 of batch-first ids (B, T).
fn cols(ids: &[u32], b: usize, t0: usize, t1: usize) -> Vec<u32> {
    let t = ids.len() / b;
    (0..b)
        .flat_map(|i| ids[i * t + t0..i * t + t1].to_vec())
        .collect()
}

#[test]
fn every_family_streams_the_same_as_it_runs_whole() {
    let Some(dev) = common::device() else { return };
    let _g = no_grad();
    let (b, t, split) = (3, 7, 4);
    for (i, family) in Family::ALL.into_iter().enumerate() {
        let m = model(&dev, family, 10 + i as u64);
        let name = family.name();
        let ids = tokens(b * t, 99);
        let (whole, last) = logits(&m, &dev, &ids, b, None);
        assert_eq!(last.steps(), [t; 3], "{name}: steps");
        // Zero state = no state.
        let z = m.zero_state(&dev, b).unwrap();
        close(
            &format!("{name}: zero state"),
            &logits(&m, &dev, &ids, b, Some(&z)).0,
            &whole,
            1e-6,
        );
        // Two calls carrying the state.
        let (a, s) = logits(&m, &dev, &cols(&ids, b, 0, split), b, None);
        let (c, s2) = logits(&m, &dev, &cols(&ids, b, split, t), b, Some(&s));
        let v = VOCAB;
        let mut two = Vec::new();
        for r in 0..b {
            two.extend_from_slice(&a[r * split * v..(r + 1) * split * v]);
            two.extend_from_slice(&c[r * (t - split) * v..(r + 1) * (t - split) * v]);
        }
        close(&format!("{name}: two calls"), &two, &whole, 2e-4);
        for (x, y) in s2.tensors().iter().zip(last.tensors()) {
            assert_eq!(x.name, y.name);
            close(
                &format!("{name}: state {}", x.name),
                &x.value.to_vec().unwrap(),
                &y.value.to_vec().unwrap(),
                2e-4,
            );
        }
        // Token by token.
        let mut state = None::<State>;
        for s in 0..t {
            let col: Vec<u32> = (0..b).map(|r| ids[r * t + s]).collect();
            let x = Tensor::from_slice_u32(&dev, &col, &[b]).unwrap();
            let (y, next) = m.step(&x, state.as_ref()).unwrap();
            let y = y.to_vec().unwrap();
            for r in 0..b {
                let want = &whole[(r * t + s) * v..(r * t + s + 1) * v];
                close(
                    &format!("{name}: step {s} stream {r}"),
                    &y[r * v..(r + 1) * v],
                    want,
                    2e-4,
                );
            }
            state = Some(next);
        }
    }
}

#[test]
fn a_pools_streams_equal_each_stream_run_alone() {
    let Some(dev) = common::device() else { return };
    let _g = no_grad();
    for family in [
        Family::Lstm,
        Family::MinGru,
        Family::Mamba,
        Family::Retnet,
        Family::Gla,
    ] {
        let name = family.name();
        let m = Arc::new(model(&dev, family, 5));
        let mut pool = StreamPool::new(m.clone(), &dev, 12).unwrap();
        let seqs: Vec<Vec<u32>> = (0..3).map(|i| tokens(9, 40 + i)).collect();
        // Each sequence alone, one token at a time at batch 1.
        let alone: Vec<Vec<Vec<f32>>> = seqs
            .iter()
            .map(|sq| {
                let mut st = None::<State>;
                sq.iter()
                    .map(|&tok| {
                        let x = Tensor::from_slice_u32(&dev, &[tok], &[1]).unwrap();
                        let (y, s) = m.step(&x, st.as_ref()).unwrap();
                        st = Some(s);
                        y.to_vec().unwrap()
                    })
                    .collect()
            })
            .collect();
        // Twelve slots: a fused model steps only the first eight (the
        // prefix holding every open stream).
        // Stream 0 from the start; stream 1 opens at tick 2; stream 2 at
        // tick 4 into the slot of a stream that closes then; streams step
        // on different ticks.
        let s0 = pool.open().unwrap();
        let extra = pool.open().unwrap();
        let mut s1 = None;
        let mut s2 = None;
        let mut pos = [0usize; 3];
        for tick in 0..24 {
            if tick == 2 {
                s1 = Some(pool.open().unwrap());
            }
            if tick == 4 {
                pool.close(extra).unwrap();
                s2 = Some(pool.open().unwrap());
                assert_eq!(
                    s2.unwrap().slot(),
                    extra.slot(),
                    "{name}: the slot is reused"
                );
                assert!(pool.steps(extra).is_err(), "{name}: a closed id is stale");
            }
            let mut inputs = Vec::new();
            for (k, id) in [Some(s0), s1, s2].into_iter().enumerate() {
                // Stream 1 skips odd ticks: its state must wait unchanged.
                if let Some(id) = id {
                    if pos[k] < 9 && !(k == 1 && tick % 2 == 1) {
                        inputs.push((k, id, seqs[k][pos[k]]));
                    }
                }
            }
            let list: Vec<_> = inputs.iter().map(|&(_, id, tok)| (id, tok)).collect();
            let out = pool.step(&list).unwrap();
            for ((k, _, _), y) in inputs.iter().zip(out) {
                close(
                    &format!("{name}: stream {k} token {}", pos[*k]),
                    &y,
                    &alone[*k][pos[*k]],
                    2e-4,
                );
                pos[*k] += 1;
            }
        }
        assert_eq!(pos, [9, 9, 9], "{name}: every stream ran to its end");
        // Snapshot, run on, restore: the same outputs again.
        let snap = pool.snapshot(s0).unwrap();
        let a = pool.step(&[(s0, 3)]).unwrap();
        pool.restore(s0, &snap).unwrap();
        let b = pool.step(&[(s0, 3)]).unwrap();
        close(&format!("{name}: restored"), &b[0], &a[0], 1e-6);
        // Reset = a fresh stream.
        pool.reset(s0).unwrap();
        let r = pool.step(&[(s0, seqs[0][0])]).unwrap();
        close(&format!("{name}: reset"), &r[0], &alone[0][0], 2e-4);
    }
}

#[test]
fn bad_requests_are_typed_errors() {
    let Some(dev) = common::device() else { return };
    let m = Arc::new(model(&dev, Family::Gru, 1));
    let mut pool = StreamPool::new(m.clone(), &dev, 2).unwrap();
    let a = pool.open().unwrap();
    let _b = pool.open().unwrap();
    let full = pool.open().unwrap_err();
    assert!(
        matches!(
            full,
            Error::InvalidArgument {
                op: "StreamPool::open",
                ..
            }
        ),
        "{full}"
    );
    let bad = pool.step(&[(a, VOCAB as u32)]).unwrap_err();
    assert!(format!("{bad}").contains("token"), "{bad}");
    let twice = pool.step(&[(a, 1), (a, 2)]).unwrap_err();
    assert!(format!("{twice}").contains("twice"), "{twice}");
    pool.close(a).unwrap();
    assert!(pool.close(a).is_err());
    assert!(pool.step(&[(a, 1)]).is_err());
    assert!(StreamPool::new(m.clone(), &dev, 0).is_err());
    // A state for another batch, or without the layer's tensors.
    let ids = Tensor::from_slice_u32(&dev, &[1, 2, 3, 4], &[2, 2]).unwrap();
    let s3 = m.zero_state(&dev, 3).unwrap();
    assert!(matches!(
        m.forward_state(&ids, Some(&s3)),
        Err(Error::ShapeMismatch { .. })
    ));
    let empty = State::new(2);
    let e = m.forward_state(&ids, Some(&empty)).err().unwrap();
    assert!(format!("{e}").contains("no tensor"), "{e}");
    // Configuration metadata round trip, and hostile metadata.
    let meta = m.config().metadata().into_iter().collect();
    assert_eq!(
        SequenceLmConfig::from_metadata(&meta).unwrap().family,
        Family::Gru
    );
    let mut huge = meta.clone();
    huge.insert("hidden".into(), "99999999".into());
    assert!(SequenceLmConfig::from_metadata(&huge).is_err());
    let mut unknown = meta;
    unknown.insert("model".into(), "transformer".into());
    assert!(SequenceLmConfig::from_metadata(&unknown).is_err());
}

#[test]
fn the_sampler_is_seeded_and_honours_temperature_and_top_k() {
    use recur_nn::stateful::sample_token;
    let logits = [0.1f32, 2.0, -1.0, 1.5, 0.3];
    let draw = |seed, t, k| {
        let mut r = Rng::new(seed);
        (0..200)
            .map(|_| sample_token(&logits, t, k, &mut r).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        draw(7, 1.0, None),
        draw(7, 1.0, None),
        "same seed, same tokens"
    );
    assert_ne!(draw(7, 1.0, None), draw(8, 1.0, None));
    assert!(
        draw(3, 0.0, None).iter().all(|&t| t == 1),
        "temperature 0: argmax"
    );
    assert!(
        draw(3, 5.0, Some(1)).iter().all(|&t| t == 1),
        "top-1: argmax"
    );
    let top2 = draw(3, 5.0, Some(2));
    assert!(
        top2.iter().all(|&t| t == 1 || t == 3) && top2.contains(&3),
        "top-2"
    );
    let all = draw(3, 5.0, None);
    assert!(
        (0..5).all(|t| all.contains(&t)),
        "a hot softmax reaches every token"
    );
    let mut r = Rng::new(1);
    assert!(sample_token(&[], 1.0, None, &mut r).is_err());
    assert!(sample_token(&[1.0, f32::NAN], 1.0, None, &mut r).is_err());
    assert!(sample_token(&[1.0], -1.0, None, &mut r).is_err());
}
