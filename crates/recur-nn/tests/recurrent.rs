//! Layer behaviour beyond the PyTorch fixtures: cells and streaming, dropout,
//! long sequences, initialisation and bad input.

mod common;
use recur_gpu::reference::{rnn_forward as ref_forward, RnnDims, RnnParams};
use recur_nn::{
    Cell, Device, Error, Layer, Module, RecurrentCell, RecurrentCellState, RecurrentConfig, Rng,
    Tensor, Var,
};

use common::{device, max_diff};

#[test]
fn stepping_a_cell_reproduces_the_sequence_layer() {
    let Some(dev) = device() else { return };
    for cell in Cell::ALL {
        let mut rng = Rng::new(11);
        let (t, b, i, h) = (6, 2, 5, 9);
        let layer = RecurrentConfig::new(cell, i, h)
            .init(&dev, &mut rng)
            .unwrap();
        let x: Vec<f32> = (0..t * b * i).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let full = layer
            .forward_tensors(
                &Tensor::from_slice(&dev, &x, &[t, b, i]).unwrap(),
                None,
                None,
            )
            .unwrap();
        let p = layer.named_parameters();
        let step_cell = RecurrentCell::from_parameters(
            cell,
            p[0].1.value().clone(),
            p[1].1.value().clone(),
            Some(p[2].1.value().clone()),
            Some(p[3].1.value().clone()),
        )
        .unwrap();
        assert!(
            RecurrentCell::from_parameters(
                cell,
                p[1].1.value().clone(),
                p[0].1.value().clone(),
                None,
                None
            )
            .is_err()
                || i == h
        );
        let mut state: Option<RecurrentCellState> = None;
        let mut outs = Vec::new();
        for s in 0..t {
            let xs = Tensor::from_slice(&dev, &x[s * b * i..(s + 1) * b * i], &[b, i]).unwrap();
            let next = step_cell.step(&xs, state.as_ref()).unwrap();
            outs.extend(next.h.to_vec().unwrap());
            state = Some(next);
        }
        let d = max_diff(&outs, &full.output.to_vec().unwrap());
        assert!(d < 1e-5, "{cell:?}: step vs sequence {d}");
        // `layer.forward(&var)` is the Layer call (the tensor forward has
        // its own name), and it computes the same sequence.
        let xv = Var::new(Tensor::from_slice(&dev, &x, &[t, b, i]).unwrap());
        let via_layer = layer.forward(&xv).unwrap().to_vec().unwrap();
        assert_eq!(
            via_layer,
            full.output.to_vec().unwrap(),
            "{cell:?}: Layer::forward"
        );
        if cell == Cell::Lstm {
            let c = state.unwrap().c.unwrap().to_vec().unwrap();
            assert!(max_diff(&c, &full.c_n.unwrap().to_vec().unwrap()) < 1e-5);
        }
    }
}

#[test]
fn long_sequences_do_not_drift_from_the_reference() {
    let Some(dev) = device() else { return };
    let (t, b, i, h) = (2000, 2, 3, 8);
    for cell in [Cell::Lstm, Cell::Gru] {
        let mut rng = Rng::new(21);
        let layer = RecurrentConfig::new(cell, i, h)
            .init(&dev, &mut rng)
            .unwrap();
        let x: Vec<f32> = (0..t * b * i).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let out = layer
            .forward_tensors(
                &Tensor::from_slice(&dev, &x, &[t, b, i]).unwrap(),
                None,
                None,
            )
            .unwrap();
        let p: Vec<Vec<f64>> = layer
            .named_parameters()
            .iter()
            .map(|(_, t)| t.to_vec().unwrap().iter().map(|&v| v as f64).collect())
            .collect();
        let params = RnnParams {
            w_ih: p[0].clone(),
            w_hh: p[1].clone(),
            b_ih: p[2].clone(),
            b_hh: p[3].clone(),
        };
        let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let want = ref_forward(
            cell,
            RnnDims { t, b, i, h },
            &params,
            &xs,
            &vec![0.0; b * h],
            &vec![0.0; b * h],
            false,
        );
        let got = out.output.to_vec().unwrap();
        let want: Vec<f32> = want.out.iter().map(|&v| v as f32).collect();
        let d = max_diff(&got, &want);
        assert!(d < 1e-4, "{cell:?} T={t}: max-abs {d}");
    }
}

#[test]
fn dropout_applies_between_layers_only_in_training() {
    let Some(dev) = device() else { return };
    let mut rng = Rng::new(3);
    let config = RecurrentConfig {
        num_layers: 2,
        dropout: 0.5,
        ..RecurrentConfig::gru(4, 16)
    };
    let layer = config.init(&dev, &mut rng).unwrap();
    let x = Tensor::rand(&dev, &[5, 3, 4], -1.0, 1.0, &mut rng).unwrap();
    let a = layer
        .forward_tensors(&x, None, None)
        .unwrap()
        .output
        .to_vec()
        .unwrap();
    let b = layer
        .forward_tensors(&x, None, None)
        .unwrap()
        .output
        .to_vec()
        .unwrap();
    assert_eq!(a, b, "inference must be deterministic (no dropout)");
    let (t1, _) = layer
        .forward_train(&x, None, None, &mut Rng::new(1))
        .unwrap();
    let (t2, tape) = layer
        .forward_train(&x, None, None, &mut Rng::new(2))
        .unwrap();
    let (t1, t2) = (t1.output.to_vec().unwrap(), t2.output.to_vec().unwrap());
    assert!(
        max_diff(&t1, &a) > 1e-3,
        "training forward should drop units"
    );
    assert!(max_diff(&t1, &t2) > 1e-3, "different masks should differ");
    // The backward runs through the same mask: finite, and the input gradient is non-zero.
    let g = layer
        .backward(
            &tape,
            &Tensor::full(&dev, &[5, 3, 16], 1.0).unwrap(),
            None,
            None,
        )
        .unwrap();
    let dx = g.dx.to_vec().unwrap();
    assert!(dx.iter().all(|v| v.is_finite()) && dx.iter().any(|&v| v != 0.0));
    let one = RecurrentConfig {
        dropout: 0.5,
        ..RecurrentConfig::gru(4, 16)
    }
    .init(&dev, &mut rng)
    .unwrap();
    let (o, _) = one.forward_train(&x, None, None, &mut Rng::new(1)).unwrap();
    assert_eq!(
        o.output.to_vec().unwrap(),
        one.forward_tensors(&x, None, None)
            .unwrap()
            .output
            .to_vec()
            .unwrap(),
        "no dropout after the last layer (as PyTorch)"
    );
}

#[test]
fn pytorch_initialisation_and_orthogonal_recurrent_weights() {
    let Some(dev) = device() else { return };
    let mut rng = Rng::new(4);
    let lstm = RecurrentConfig {
        num_layers: 2,
        bidirectional: true,
        ..RecurrentConfig::lstm(6, 10)
    }
    .init(&dev, &mut rng)
    .unwrap();
    let names: Vec<String> = lstm
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names.len(), 16);
    assert_eq!(
        &names[..4],
        ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    );
    assert_eq!(names[4], "weight_ih_l0_reverse");
    assert_eq!(
        lstm.named_parameters()[8].1.shape(),
        &[40, 20],
        "layer 1 reads both directions"
    );
    let k = 1.0 / 10f32.sqrt();
    for (_, t) in lstm.named_parameters() {
        assert!(t.to_vec().unwrap().iter().all(|v| v.abs() <= k));
    }
    lstm.init_orthogonal_hh(&mut rng).unwrap();
    let w = lstm.named_parameters()[1].1.to_vec().unwrap(); // (40, 10)
    for a in 0..10 {
        let norm: f32 = (0..40).map(|r| w[r * 10 + a] * w[r * 10 + a]).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    let no_bias = RecurrentConfig {
        bias: false,
        ..RecurrentConfig::rnn(3, 4)
    }
    .init(&dev, &mut rng)
    .unwrap();
    assert_eq!(no_bias.named_parameters().len(), 2);
    let out = no_bias
        .forward_tensors(&Tensor::zeros(&dev, &[2, 1, 3]).unwrap(), None, None)
        .unwrap();
    assert!(
        out.output.to_vec().unwrap().iter().all(|&v| v == 0.0),
        "no bias: zero in, zero out"
    );
}

#[test]
fn bad_input_is_a_typed_error_naming_the_layer() {
    let Some(dev) = device() else { return };
    let mut rng = Rng::new(5);
    let lstm = RecurrentConfig {
        num_layers: 2,
        ..RecurrentConfig::lstm(4, 6)
    }
    .init(&dev, &mut rng)
    .unwrap();
    let z = |s: &[usize]| Tensor::zeros(&dev, s).unwrap();
    let shape_err = |r: Result<(), Error>, op: &str| match r {
        Err(Error::ShapeMismatch { op: o, .. }) => assert!(o.starts_with(op), "{o}"),
        other => panic!("{op}: expected a shape error, got {other:?}"),
    };
    shape_err(
        lstm.forward_tensors(&z(&[5, 2, 3]), None, None).map(drop),
        "Recurrent::forward",
    ); // input size
    shape_err(
        lstm.forward_tensors(&z(&[0, 2, 4]), None, None).map(drop),
        "Recurrent::forward",
    ); // empty sequence
    shape_err(
        lstm.forward_tensors(&z(&[2, 4]), None, None).map(drop),
        "Recurrent::forward",
    ); // rank
    shape_err(
        lstm.forward_tensors(&z(&[5, 2, 4]), Some(&z(&[1, 2, 6])), None)
            .map(drop),
        "Recurrent::forward h0",
    );
    shape_err(
        lstm.forward_tensors(&z(&[5, 2, 4]), None, Some(&z(&[2, 3, 6])))
            .map(drop),
        "Recurrent::forward c0",
    );
    let ids = Tensor::from_slice_u32(&dev, &[0; 40], &[5, 2, 4]).unwrap();
    assert!(matches!(
        lstm.forward_tensors(&ids, None, None),
        Err(Error::DType { .. })
    ));
    let l2 = lstm.clone();
    assert!(matches!(
        l2.set_parameter("weight_ih_l7", &z(&[24, 4])),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        l2.set_parameter("weight_ih_l0", &z(&[24, 5])),
        Err(Error::ShapeMismatch { .. })
    ));
    let (_, tape) = RecurrentConfig::lstm(4, 6)
        .init(&dev, &mut rng)
        .unwrap()
        .forward_train(&z(&[5, 2, 4]), None, None, &mut rng)
        .unwrap();
    assert!(matches!(
        lstm.backward(&tape, &z(&[5, 2, 6]), None, None),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(RecurrentConfig {
        dropout: 1.0,
        ..RecurrentConfig::gru(2, 2)
    }
    .init(&dev, &mut rng)
    .is_err());
    let cell = RecurrentCell::new(Cell::Gru, 3, 4, true, &dev, &mut rng).unwrap();
    shape_err(cell.step(&z(&[2, 5]), None).map(drop), "rnn");
    shape_err(
        cell.step(&z(&[2, 2, 3]), None).map(drop),
        "RecurrentCell::step",
    );
}

#[test]
fn training_step_is_one_submission_with_at_most_one_and_two_dispatches_per_step() {
    let Some(_) = device() else { return };
    // A device of its own, so other tests' work does not count.
    let dev = Device::new().unwrap();
    let mut rng = Rng::new(9);
    let (t, b, i, h) = (40, 4, 6, 12);
    for config in [
        RecurrentConfig::lstm(i, h),
        RecurrentConfig::gru(i, h),
        RecurrentConfig::rnn(i, h),
    ] {
        let layer = config.init(&dev, &mut rng).unwrap();
        let x = Tensor::rand(&dev, &[t, b, i], -1.0, 1.0, &mut rng).unwrap();
        let dy = Tensor::rand(&dev, &[t, b, h], -1.0, 1.0, &mut rng).unwrap();
        dev.sync().unwrap();
        let c0 = dev.counters();
        let (_, tape) = layer.forward_train(&x, None, None, &mut rng).unwrap();
        let c1 = dev.counters();
        let g = layer.backward(&tape, &dy, None, None).unwrap();
        let c2 = dev.counters();
        assert_eq!(
            c2.submissions, c0.submissions,
            "{:?}: recording must not submit",
            config.cell
        );
        let fwd = (c1.dispatches - c0.dispatches) as usize;
        let bwd = (c2.dispatches - c1.dispatches) as usize;
        assert!(
            fwd <= t + 12,
            "{:?}: {fwd} forward dispatches for {t} steps",
            config.cell
        );
        assert!(
            bwd <= 2 * t + 12,
            "{:?}: {bwd} backward dispatches for {t} steps",
            config.cell
        );
        g.dx.to_vec().unwrap();
        assert_eq!(
            dev.counters().submissions,
            c0.submissions + 1,
            "one submission for forward+backward+readback"
        );
    }
}
