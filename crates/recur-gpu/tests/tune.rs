//! Kernel choice by measurement: GEMM's `Auto` measures its candidates once
//! per shape class, keeps the choice (in the process and in a cache file),
//! leaves the caller's output as the plain GEMM would, and ignores a bad
//! cache file.

mod common;

use common::{assert_close, data, upload};
use recur_gpu::ops::gemm::{Gemm, GemmShape};
use recur_gpu::{reference, Device, DeviceOptions};

fn tuning_device(cache: &std::path::Path) -> Device {
    let options = DeviceOptions {
        tune: Some(true),
        tune_cache: Some(cache.to_path_buf()),
        ..Default::default()
    };
    pollster::block_on(Device::with_options(options)).unwrap()
}

fn cache_file(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("recur-tune-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// C = -1.5 C + A Bᵀ on the device, checked against the reference.
fn check_gemm(dev: &Device, m: usize, n: usize, k: usize, seed: u64) {
    let cfg = Gemm {
        trans_b: true,
        beta: -1.5,
        ..Gemm::default()
    };
    let (a_host, b_host, c_host) = (
        data(m * k, seed),
        data(n * k, seed + 1),
        data(m * n, seed + 2),
    );
    let a = upload(dev, &a_host, &[m, k]);
    let b = upload(dev, &b_host, &[n, k]);
    let c = upload(dev, &c_host, &[m, n]);
    cfg.run_into(&a, &b, None, &c).unwrap();
    let s = GemmShape {
        z: 1,
        m,
        n,
        k,
        shared_b: true,
    };
    let mut want = c_host;
    reference::gemm(&cfg, &s, &a_host, &b_host, None, &mut want);
    assert_close(
        &format!("tuned gemm {m}x{n}x{k}"),
        &c.to_vec().unwrap(),
        &want,
        1e-4,
        1e-4,
    );
}

#[test]
fn gemm_auto_measures_once_per_shape_class_and_keeps_the_choice() {
    let Some(_) = common::device() else { return };
    let cache = cache_file("keeps");
    let dev = tuning_device(&cache);
    assert!(dev.tuning());
    check_gemm(&dev, 70, 90, 50, 1);
    assert_eq!(dev.tune_measurements(), 1);
    let tuned = dev.tuned();
    assert_eq!(tuned.len(), 1, "{tuned:?}");
    assert!(
        ["tiled", "wide", "blocked"].contains(&tuned[0].1.as_str()),
        "{tuned:?}"
    );
    // Same class (every size within the same power of two): no new timing.
    check_gemm(&dev, 65, 100, 60, 2);
    assert_eq!(dev.tune_measurements(), 1);
    // Another class.
    check_gemm(&dev, 300, 90, 50, 3);
    assert_eq!(dev.tune_measurements(), 2);
    // A new device with the same cache file measures nothing.
    let again = tuning_device(&cache);
    assert_eq!(again.tuned(), dev.tuned());
    check_gemm(&again, 70, 90, 50, 4);
    check_gemm(&again, 300, 90, 50, 5);
    assert_eq!(again.tune_measurements(), 0);
    let _ = std::fs::remove_file(&cache);
}

#[test]
fn a_bad_cache_file_is_ignored() {
    let Some(_) = common::device() else { return };
    let cache = cache_file("bad");
    let mut junk = b"no tabs here\n\t\t\n\xff\xfe binary\nadapter\tclass\tchoice\textra\n".to_vec();
    junk.extend(std::iter::repeat_n(b'x', 10_000));
    std::fs::write(&cache, junk).unwrap();
    let dev = tuning_device(&cache);
    assert!(dev.tuned().is_empty());
    // A choice naming no candidate is measured anew.
    let adapter = format!(
        "{} {:?} {}",
        dev.info().name,
        dev.info().backend,
        dev.info().driver
    );
    std::fs::write(
        &cache,
        format!("{adapter}\tgemm nt F32 z0 m7 n7 k6\tbogus\n"),
    )
    .unwrap();
    let dev = tuning_device(&cache);
    assert_eq!(dev.tuned().len(), 1);
    check_gemm(&dev, 70, 90, 50, 6);
    assert_eq!(dev.tune_measurements(), 1);
    let _ = std::fs::remove_file(&cache);
}

#[test]
fn cpu_adapters_do_not_tune_by_default() {
    let Some(dev) = common::device() else { return };
    if dev.info().device_type == recur_gpu::wgpu::DeviceType::Cpu
        && std::env::var("RECUR_TUNE").is_err()
    {
        assert!(!dev.tuning());
        check_gemm(&dev, 70, 90, 50, 7);
        assert_eq!(dev.tune_measurements(), 0);
    }
}

#[test]
fn rnn_auto_measures_its_strategies_once_and_matches_stepped() {
    use recur_gpu::ops::rnn::{rnn_forward_run, Cell, RnnRun, RnnStrategy, RnnWeights};
    use recur_gpu::{Rng, Tensor};
    let Some(_) = common::device() else { return };
    let cache = cache_file("rnn");
    let dev = tuning_device(&cache);
    let (t, b, i, h) = (9, 5, 7, 12);
    let mut rng = Rng::new(3);
    let r = |s: &[usize], rng: &mut Rng| Tensor::rand(&dev, s, -0.5, 0.5, rng).unwrap();
    let (w_ih, w_hh, b_ih, b_hh) = (
        r(&[4 * h, i], &mut rng),
        r(&[4 * h, h], &mut rng),
        r(&[4 * h], &mut rng),
        r(&[4 * h], &mut rng),
    );
    let x = r(&[t, b, i], &mut rng);
    let w = RnnWeights {
        w_ih: &w_ih,
        w_hh: &w_hh,
        b_ih: Some(&b_ih),
        b_hh: Some(&b_hh),
    };
    let run = |strategy| RnnRun {
        strategy,
        train: true,
        ..RnnRun::new(Cell::Lstm)
    };
    let auto = rnn_forward_run(&run(RnnStrategy::Auto), &w, &x, None, None).unwrap();
    let stepped = rnn_forward_run(&run(RnnStrategy::Stepped), &w, &x, None, None).unwrap();
    // The strategy's class, and its input projection's GEMM class.
    let measured = dev.tune_measurements();
    let tuned = dev.tuned();
    let rnn: Vec<_> = tuned
        .iter()
        .filter(|(c, _)| c.starts_with("rnn "))
        .collect();
    assert_eq!(rnn.len(), 1, "{tuned:?}");
    assert!(rnn[0].0.starts_with("rnn Lstm fwd"), "{tuned:?}");
    assert!(["stepped", "narrow", "persistent"].contains(&rnn[0].1.as_str()));
    assert!(auto.cache.is_some(), "the tuned run still trains");
    assert_close(
        "tuned vs stepped",
        &auto.output.to_vec().unwrap(),
        &stepped.output.to_vec().unwrap(),
        1e-5,
        1e-5,
    );
    rnn_forward_run(&run(RnnStrategy::Auto), &w, &x, None, None).unwrap();
    assert_eq!(dev.tune_measurements(), measured);
    let _ = std::fs::remove_file(&cache);
}
