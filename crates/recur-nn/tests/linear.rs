mod common;
use recur_nn::{Error, Layer, LinearConfig, Module, Rng, Tensor, Var};

use common::device;

#[test]
fn linear_matches_a_host_computation_and_pytorch_layout() {
    let Some(dev) = device() else { return };
    let mut rng = Rng::new(3);
    let layer = LinearConfig::new(7, 5).init(&dev, &mut rng).unwrap();
    assert_eq!(layer.weight.shape(), &[5, 7]);
    let w = layer.weight.to_vec().unwrap();
    let b = layer.bias.as_ref().unwrap().to_vec().unwrap();
    let bound = 1.0 / 7f32.sqrt();
    assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
    let x: Vec<f32> = (0..2 * 3 * 7).map(|i| (i as f32 * 0.37).sin()).collect();
    let y = layer
        .forward(&Var::new(Tensor::from_slice(&dev, &x, &[2, 3, 7]).unwrap()))
        .unwrap();
    assert_eq!(y.shape(), &[2, 3, 5]);
    let y = y.to_vec().unwrap();
    for r in 0..6 {
        for o in 0..5 {
            let want: f32 = b[o] + (0..7).map(|i| x[r * 7 + i] * w[o * 7 + i]).sum::<f32>();
            assert!(
                (y[r * 5 + o] - want).abs() < 1e-5,
                "row {r} out {o}: {} vs {want}",
                y[r * 5 + o]
            );
        }
    }
    let names: Vec<_> = layer
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["weight", "bias"]);
    let bad = layer
        .forward(&Var::new(Tensor::zeros(&dev, &[3, 6]).unwrap()))
        .unwrap_err();
    assert!(
        matches!(bad, Error::ShapeMismatch { op: "linear", .. }),
        "{bad}"
    );
    assert!(LinearConfig::new(0, 3).init(&dev, &mut rng).is_err());
}

/// Ids past an embedding table and class targets past the logits are errors
/// at the next readback, naming the op, the index and the bound (as PyTorch
/// raises), not a zero row or a loss that silently skips the row.
#[test]
fn out_of_range_ids_and_targets_are_errors_at_the_next_readback() {
    use recur_nn::{functional as F, Embedding, LossReduction};
    let Some(dev) = device() else { return };
    let mut rng = Rng::new(5);
    let emb = Embedding::new(&dev, 10, 4, &mut rng).unwrap();
    let ids = Tensor::from_slice_u32(&dev, &[1, 10, 2], &[3]).unwrap();
    let err = emb.forward(&ids).unwrap().to_vec().unwrap_err();
    assert!(
        matches!(
            err,
            Error::IndexOutOfRange {
                op: "embedding",
                index: 10,
                bound: 10
            }
        ),
        "{err}"
    );
    let logits = Var::new(Tensor::zeros(&dev, &[2, 5]).unwrap());
    let targets = Tensor::from_slice_u32(&dev, &[4, 5], &[2]).unwrap();
    let loss = F::cross_entropy(&logits, &targets, None, LossReduction::Mean).unwrap();
    let err = loss.item().unwrap_err();
    assert!(
        matches!(
            err,
            Error::IndexOutOfRange {
                op: "cross_entropy",
                index: 5,
                bound: 5
            }
        ),
        "{err}"
    );
    // Reported once: the next readback is clean.
    let ok = Tensor::from_slice_u32(&dev, &[0, 9], &[2]).unwrap();
    assert_eq!(emb.forward(&ok).unwrap().shape(), &[2, 4]);
    assert!(emb.forward(&ok).unwrap().to_vec().is_ok());
}
