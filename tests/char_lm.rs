//! The main job stops with a clear error naming the step when the training
//! loss becomes non-finite, instead of training on through NaNs.

use std::path::PathBuf;
use std::process::Command;

use recur::nn::checkpoint::Checkpoint;

/// The `char_lm` example binary `cargo test` built beside this test.
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples")
        .join(format!("char_lm{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn char_lm_stops_at_the_step_where_the_loss_became_non_finite() {
    let Some(_) = recur::gpu::Device::new().ok() else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "CI=true but no GPU adapter");
        return;
    };
    let exe = example();
    assert!(exe.exists(), "{} was not built", exe.display());
    let plot = std::env::temp_dir().join(format!("recur_nan_test_{}", std::process::id()));
    // A learning rate of 1e38 overflows the weights within a few updates.
    let out = Command::new(&exe)
        .args([
            "--steps",
            "30",
            "--lr",
            "1e38",
            "--hidden",
            "16",
            "--layers",
            "1",
            "--embed",
            "8",
            "--batch",
            "4",
            "--k1",
            "16",
            "--eval-every",
            "1000",
            "--sample",
            "0",
            "--plot",
        ])
        .arg(&plot)
        .output()
        .expect("run char_lm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "char_lm trained on: {stderr}");
    let at = stderr
        .find("at step ")
        .unwrap_or_else(|| panic!("no step named: {stderr}"));
    let step: u64 = stderr[at + 8..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no step number: {stderr}"));
    assert!((1..=30).contains(&step), "{stderr}");
    assert!(stderr.contains("became"), "{stderr}");
    for ext in ["png", "svg"] {
        let _ = std::fs::remove_file(plot.with_extension(ext));
    }
}

/// Every mixer on the chunked linear-attention engine trains in `char_lm`
/// (a few steps of a tiny model) and reports a finite validation loss.
#[test]
fn char_lm_trains_the_chunked_attention_models() {
    let Some(_) = recur::gpu::Device::new().ok() else {
        return;
    };
    let exe = example();
    for model in ["mamba2", "linear", "retnet", "gla"] {
        let plot = std::env::temp_dir().join(format!("recur_{model}_{}", std::process::id()));
        let out = Command::new(&exe)
            .args([
                "--model",
                model,
                "--steps",
                "4",
                "--hidden",
                "64",
                "--layers",
                "1",
                "--batch",
                "4",
                "--k1",
                "16",
                "--eval-every",
                "4",
                "--sample",
                "0",
                "--plot",
            ])
            .arg(&plot)
            .output()
            .expect("run char_lm");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{model}: {stderr}");
        let line = stdout
            .lines()
            .find(|l| l.contains("validation") && l.contains("nats/char"))
            .unwrap_or_else(|| panic!("{model}: no validation line: {stdout}"));
        let loss: f32 = line
            .split("validation")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{model}: {line}"));
        // Four updates from a uniform start: finite and not above the
        // uniform distribution's loss ln V (plus slack for the first steps).
        let vocab: f32 = stdout
            .split("vocabulary ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{model}: no vocabulary size: {stdout}"));
        assert!(
            loss.is_finite() && loss < vocab.ln() + 0.5,
            "{model}: {line} (ln V = {})",
            vocab.ln()
        );
        for ext in ["png", "svg"] {
            let _ = std::fs::remove_file(plot.with_extension(ext));
        }
    }
}

/// `char_lm` (PyTorch-style layers with dropout, Mamba blocks, RetNet
/// blocks), stopped at step 3 and resumed from its checkpoint, ends at step
/// 6 with the checkpoint of an uninterrupted run: the same parameters,
/// moments, carried state (RetNet's per-stream positions too) and losses.
#[test]
fn char_lm_resumes_exactly() {
    let Some(_) = recur::gpu::Device::new().ok() else {
        return;
    };
    let exe = example();
    let dir = std::env::temp_dir().join(format!("recur_resume_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |model: &str, extra: &[&str]| {
        let out = Command::new(&exe)
            .args([
                "--model",
                model,
                "--steps",
                "6",
                "--hidden",
                "32",
                "--layers",
                "2",
                "--batch",
                "3",
                "--k1",
                "8",
                "--eval-every",
                "3",
                "--sample",
                "0",
                "--dropout",
                "0.1",
            ])
            .arg("--plot")
            .arg(dir.join(model))
            .args(extra)
            .output()
            .expect("run char_lm");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{model} {extra:?}: {stderr}");
    };
    for model in ["lstm", "mamba", "retnet"] {
        let path = |name: &str| dir.join(format!("{model}_{name}.safetensors"));
        let (whole, resumed) = (path("whole"), path("resumed"));
        run(model, &["--checkpoint", whole.to_str().unwrap()]);
        let r = resumed.to_str().unwrap();
        run(model, &["--checkpoint", r, "--stop-at", "3"]);
        run(model, &["--checkpoint", r, "--resume"]);
        let a = Checkpoint::load(&whole).unwrap();
        let b = Checkpoint::load(&resumed).unwrap();
        let names: Vec<&str> = a.names().collect();
        assert!(
            names.iter().any(|n| n.starts_with("state.")),
            "{model}: no state saved"
        );
        assert_eq!(b.names().count(), names.len(), "{model}: tensors");
        for key in ["step", "history.train", "state.steps", "dropout_rng", "rng"] {
            assert_eq!(a.metadata.get(key), b.metadata.get(key), "{model}: {key}");
        }
        for n in names {
            let (x, y) = (a.host(n).unwrap(), b.host(n).unwrap());
            assert_eq!(x.0, y.0, "{model}: {n} shape");
            let worst =
                x.1.iter()
                    .zip(y.1)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0f32, f32::max);
            assert!(worst <= 1e-6, "{model}: {n} differs by {worst}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
