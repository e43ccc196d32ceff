//! The runtime: recording and submission, the buffer pool, and typed errors
//! for bad input (never a panic).

mod common;

use common::{data, upload};
use recur_gpu::ops::elementwise::{self, BinaryOp};
use recur_gpu::ops::gemm::{self, Gemm};
use recur_gpu::ops::{embedding, layout, reduce, softmax, Activation};
use recur_gpu::{Device, Error, Tensor};

#[test]
fn device_info_reports_adapter_features_and_limits() {
    let Some(dev) = common::device() else { return };
    let info = dev.info();
    assert!(!info.name.is_empty());
    assert!(
        info.limits.max_storage_buffer_binding_size >= 128 << 20,
        "adapter limits were not requested"
    );
    let allowed =
        recur_gpu::OPTIONAL_FEATURES | recur_gpu::wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
    assert!(allowed.contains(info.features));
    let text = info.to_string();
    assert!(text.contains(&info.name) && text.contains("storage binding"));
}

#[test]
fn cooperative_matrices_are_opt_in_and_need_the_adapters_configuration() {
    let Some(_) = common::device() else { return };
    let off = pollster::block_on(Device::with_options(Default::default())).unwrap();
    assert!(!off.info().coop_f16);
    assert!(!off
        .info()
        .has(recur_gpu::wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX));
    let options = recur_gpu::DeviceOptions {
        cooperative_matrix: true,
        mixed_precision: true,
        ..Default::default()
    };
    let on = pollster::block_on(Device::with_options(options)).unwrap();
    // Mixed precision only where the cooperative GEMM can run.
    assert_eq!(on.info().mixed_precision, on.info().coop_f16);
    let enabled = on
        .info()
        .has(recur_gpu::wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
    // coop_f16 implies the feature (and, on lavapipe, neither is there).
    assert!(!on.info().coop_f16 || enabled);
    if on.info().device_type == recur_gpu::wgpu::DeviceType::Cpu {
        assert!(!on.info().coop_f16);
    }
}

#[test]
fn no_matching_adapter_is_a_clear_error() {
    let options = recur_gpu::DeviceOptions {
        adapter: Some("no adapter is called this".into()),
        ..Default::default()
    };
    let err = pollster::block_on(Device::with_options(options)).unwrap_err();
    assert!(matches!(err, Error::NoAdapter { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("mesa-vulkan-drivers") && text.contains("RECUR_ADAPTER"),
        "{text}"
    );
    assert!(recur_gpu::parse_backends("vulkan,gl").is_ok());
    assert!(matches!(
        recur_gpu::parse_backends("cuda"),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn a_thousand_dispatches_go_out_in_one_submission() {
    // A device of its own: the shared one counts other tests' submissions.
    let Some(_) = common::device() else { return };
    let dev = Device::new().unwrap();
    dev.sync().unwrap();
    let before = dev.counters();
    let mut x = upload(&dev, &[1.0, -2.0, 3.0], &[3]);
    for _ in 0..1000 {
        x = elementwise::unary(&x, Activation::Identity, 1.0, 0.001).unwrap();
    }
    assert_eq!(
        dev.counters().submissions,
        before.submissions,
        "an op submitted or waited"
    );
    let got = x.to_vec().unwrap();
    let after = dev.counters();
    assert_eq!(after.dispatches - before.dispatches, 1000);
    assert_eq!(
        after.submissions - before.submissions,
        1,
        "the readback should submit once"
    );
    common::assert_close("chained adds", &got, &[2.0, -1.0, 4.0], 1e-3, 0.0);
}

#[test]
fn long_recordings_without_readback_go_out_in_bounded_submissions() {
    use recur_gpu::record::{MAX_IN_FLIGHT, MAX_PENDING_DISPATCHES};
    let Some(_) = common::device() else { return };
    let dev = Device::new().unwrap();
    dev.sync().unwrap();
    let before = dev.counters();
    let n = MAX_PENDING_DISPATCHES * (MAX_IN_FLIGHT + 2) + 7;
    let mut x = upload(&dev, &[0.0; 5], &[5]);
    for _ in 0..n {
        x = elementwise::unary(&x, Activation::Identity, 1.0, 1.0).unwrap();
    }
    // Full recordings went out on their own, each waiting for the GPU to
    // finish all but MAX_IN_FLIGHT earlier ones; nothing was lost.
    assert_eq!(
        dev.counters().submissions - before.submissions,
        (n / MAX_PENDING_DISPATCHES) as u64
    );
    assert_eq!(x.to_vec().unwrap(), vec![n as f32; 5]);
}

#[test]
fn pool_reuses_buffers_and_memory_does_not_grow() {
    let Some(_) = common::device() else { return };
    let dev = Device::new().unwrap();
    let x = upload(&dev, &data(4096, 1), &[64, 64]);
    let step = |x: &Tensor| -> Tensor {
        let y = gemm::matmul(x, x).unwrap();
        let y = elementwise::activation(&y, Activation::Tanh).unwrap();
        softmax::softmax(&y).unwrap()
    };
    for _ in 0..5 {
        step(&x);
    }
    dev.sync().unwrap();
    let warm = dev.memory_stats();
    for _ in 0..200 {
        let y = step(&x);
        drop(y);
    }
    dev.sync().unwrap();
    let after = dev.memory_stats();
    // Each step makes three tensors; a buffer freed while the recording is
    // open is reused by the next op, so the driver sees no new allocations.
    assert!(after.reuses >= warm.reuses + 600, "{warm:?} -> {after:?}");
    assert!(
        after.allocations <= warm.allocations + 4,
        "pool did not reuse: {warm:?} -> {after:?}"
    );
    assert!(
        after.bytes_live <= warm.bytes_live,
        "live memory grew: {warm:?} -> {after:?}"
    );
    assert!(after.bytes_peak >= after.bytes_live);
}

#[test]
fn uploads_never_overwrite_what_the_open_recording_still_reads() {
    let Some(_) = common::device() else { return };
    let dev = Device::new().unwrap();
    let a = upload(&dev, &[1.0, 2.0, 3.0, 4.0], &[4]);
    let doubled = elementwise::scale(&a, 2.0).unwrap(); // recorded, reads a's buffer
    drop(a); // a's buffer goes back to the pool while the recording is open
    let before = dev.counters().submissions;
    // The pool hands the upload another buffer instead of submitting the
    // recording early (a training step uploads ids and masks mid-recording).
    let b = upload(&dev, &[100.0, 100.0, 100.0, 100.0], &[4]);
    assert_eq!(dev.counters().submissions, before, "the upload submitted");
    assert_eq!(doubled.to_vec().unwrap(), vec![2.0, 4.0, 6.0, 8.0]);
    assert_eq!(b.to_vec().unwrap(), vec![100.0; 4]);
}

#[test]
fn too_large_tensors_are_refused_before_allocation() {
    // A device of its own: it reads back, and the shared device may hold
    // another test's deliberate validation error until its next sync.
    let Some(_) = common::device() else { return };
    let dev = Device::new().unwrap();
    let limits = dev.info().limits.clone();
    // Over the buffer size: refused before anything is allocated or drawn.
    let huge = limits.max_buffer_size as usize / 4 + 1024;
    let err = Tensor::zeros(&dev, &[huge]).unwrap_err();
    assert!(matches!(err, Error::TooLarge { op: "full", .. }), "{err}");
    let err = Tensor::zeros(&dev, &[usize::MAX / 2, 4]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    let mut rng = recur_gpu::Rng::new(1);
    assert!(matches!(
        Tensor::randn(&dev, &[huge], 0.0, 1.0, &mut rng),
        Err(Error::TooLarge { .. })
    ));
    // Over one storage binding but within the buffer size: the tensor
    // exists, fill works a slice at a time, and a kernel that binds it
    // whole refuses it, naming itself.
    if limits.max_buffer_size > limits.max_storage_buffer_binding_size + (1 << 20) {
        let n = limits.max_storage_buffer_binding_size as usize / 4 + 1024;
        let big = Tensor::full(&dev, &[n], 2.5).unwrap();
        let host = big.to_vec().unwrap();
        assert!(host[0] == 2.5 && host[n - 1] == 2.5 && host[n / 2] == 2.5);
        let err = elementwise::scale(&big, 2.0).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("unary"), "{err}");
    }
}

#[test]
fn from_slice_with_the_wrong_length_is_an_error() {
    let Some(dev) = common::device() else { return };
    let err = Tensor::from_slice(&dev, &[1.0, 2.0, 3.0], &[2, 2]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LengthMismatch {
                len: 3,
                numel: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(Tensor::from_slice_u32(&dev, &[1], &[2]).is_err());
    assert!(Tensor::from_slice_f16(&dev, &[], &[1]).is_err());
    let t = upload(&dev, &[1.0, 2.0], &[2]);
    assert!(matches!(
        t.reshape(&[3]),
        Err(Error::ShapeMismatch { op: "reshape", .. })
    ));
    assert!(matches!(
        t.item(),
        Err(Error::ShapeMismatch { op: "item", .. })
    ));
    assert!(matches!(t.to_vec_u32(), Err(Error::DType { .. })));
}

#[test]
fn reading_a_tensor_after_its_device_is_dropped_is_an_error() {
    let Ok(dev) = Device::new() else {
        assert!(common::device().is_none());
        return;
    };
    let t = upload(&dev, &[1.0, 2.0], &[2]);
    drop(dev);
    assert!(matches!(
        t.to_vec(),
        Err(Error::DeviceDropped { op: "to_vec" })
    ));
    assert!(matches!(
        elementwise::scale(&t, 2.0),
        Err(Error::DeviceDropped { .. })
    ));
}

#[test]
fn operands_on_different_devices_are_an_error() {
    let Some(dev) = common::device() else { return };
    let Ok(other) = Device::new() else { return };
    let a = upload(&dev, &[1.0; 4], &[2, 2]);
    let b = upload(&other, &[1.0; 4], &[2, 2]);
    assert!(matches!(
        gemm::matmul(&a, &b),
        Err(Error::DeviceMismatch { op: "gemm" })
    ));
}

#[test]
fn wgpu_validation_errors_are_returned_not_panicked() {
    // A device of its own: the error it provokes must not reach other tests.
    let Some(_) = common::device() else { return };
    let dev = Device::new().unwrap();
    // An invalid buffer created straight through wgpu, outside any scope of
    // ours, must reach the caller as an Err at the next sync.
    let _bad = dev
        .wgpu_device()
        .create_buffer(&recur_gpu::wgpu::BufferDescriptor {
            label: Some("invalid usage on purpose"),
            size: 16,
            usage: recur_gpu::wgpu::BufferUsages::MAP_READ
                | recur_gpu::wgpu::BufferUsages::MAP_WRITE,
            mapped_at_creation: false,
        });
    let err = dev.sync().unwrap_err();
    assert!(matches!(err, Error::Validation { .. }), "{err}");
    dev.sync().expect("the error is reported once");
}

#[test]
fn mismatched_shapes_are_typed_errors_for_every_op() {
    let Some(dev) = common::device() else { return };
    let t = |shape: &[usize]| Tensor::zeros(&dev, shape).unwrap();
    let ids = Tensor::from_slice_u32(&dev, &[0, 1, 2], &[3]).unwrap();
    let shape_err = |r: recur_gpu::Result<_>, op: &str| match r {
        Err(Error::ShapeMismatch { op: o, .. }) | Err(Error::InvalidArgument { op: o, .. }) => {
            assert_eq!(o, op)
        }
        Err(e) => panic!("{op}: wrong error {e}"),
        Ok(_) => panic!("{op}: accepted bad shapes"),
    };
    shape_err(gemm::matmul(&t(&[3, 4]), &t(&[5, 6])).map(drop), "gemm");
    shape_err(gemm::matmul(&t(&[3]), &t(&[3, 6])).map(drop), "gemm");
    shape_err(
        gemm::matmul(&t(&[2, 3, 4]), &t(&[3, 4, 6])).map(drop),
        "gemm",
    );
    shape_err(
        Gemm::default().run_into(&t(&[3, 4]), &t(&[4, 5]), None, &t(&[3, 4])),
        "gemm",
    );
    shape_err(
        Gemm::default()
            .run(&t(&[3, 4]), &t(&[4, 5]), Some(&t(&[4])))
            .map(drop),
        "gemm",
    );
    shape_err(
        elementwise::binary(&t(&[3, 4]), &t(&[3]), BinaryOp::Add, 1.0).map(drop),
        "binary",
    );
    shape_err(
        elementwise::activation_backward(&t(&[3]), &t(&[4]), Activation::Tanh).map(drop),
        "activation_backward",
    );
    shape_err(reduce::sum(&t(&[3, 4]), 2).map(drop), "reduce");
    shape_err(reduce::max(&t(&[3, 0]), 1).map(drop), "reduce");
    shape_err(softmax::softmax(&t(&[3, 0])).map(drop), "softmax");
    shape_err(
        softmax::cross_entropy(&t(&[4, 5]), &ids, None, Default::default()).map(drop),
        "cross_entropy",
    );
    assert!(matches!(
        softmax::cross_entropy(&t(&[3, 5]), &t(&[3]), None, Default::default()),
        Err(Error::DType {
            op: "cross_entropy",
            ..
        })
    ));
    shape_err(embedding::embedding(&t(&[5]), &ids).map(drop), "embedding");
    shape_err(
        embedding::embedding_backward_into(&t(&[5, 4]), &ids, &t(&[3, 5])),
        "embedding_backward",
    );
    shape_err(layout::transpose(&t(&[5])).map(drop), "transpose");
    shape_err(layout::slice(&t(&[5, 4]), 0, 3, 3).map(drop), "slice");
    shape_err(layout::slice(&t(&[5, 4]), 2, 0, 1).map(drop), "slice");
    shape_err(
        layout::concat(&[&t(&[5, 4]), &t(&[5, 3])], 0).map(drop),
        "concat",
    );
    assert!(matches!(
        elementwise::add(&ids, &ids),
        Err(Error::DType { .. })
    ));
}

#[test]
fn empty_tensors_are_fine_where_the_math_allows() {
    let Some(dev) = common::device() else { return };
    let e = Tensor::zeros(&dev, &[0, 4]).unwrap();
    assert_eq!(elementwise::scale(&e, 2.0).unwrap().numel(), 0);
    let c = gemm::matmul(
        &Tensor::zeros(&dev, &[3, 0]).unwrap(),
        &Tensor::zeros(&dev, &[0, 2]).unwrap(),
    )
    .unwrap();
    assert_eq!(c.shape(), &[3, 2]);
    assert_eq!(reduce::sum(&e, 0).unwrap().to_vec().unwrap(), vec![0.0; 4]);
    assert!(reduce::mean(&e, 0)
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .all(|v| v.is_nan()));
}
