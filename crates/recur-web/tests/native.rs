//! The page's Rust, run natively on whatever adapter this machine has
//! (lavapipe in CI): the checks pass, training lowers the loss, a checkpoint
//! round-trips, and bad input is refused with typed errors.

use recur_gpu::Device;
use recur_web::{checks, CharTrainer, TrainerConfig};

fn device() -> Option<Device> {
    match Device::new() {
        Ok(d) => Some(d),
        Err(e) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but no adapter: {e}"
            );
            None
        }
    }
}

fn small() -> TrainerConfig {
    TrainerConfig {
        hidden: 32,
        embed: 16,
        batch: 4,
        window: 16,
        lr: 1e-2,
        ..TrainerConfig::default()
    }
}

const TEXT: &str = "the quick brown fox jumps over the lazy dog. ";

#[test]
fn every_check_passes_and_a_broken_result_would_fail() {
    let Some(dev) = device() else { return };
    let all = pollster::block_on(checks::run_all(&dev)).unwrap();
    assert_eq!(all.len(), 1 + 8 + 6 + 2, "{all:#?}");
    for c in &all {
        assert!(c.ok, "{c:?}");
    }
    // The comparison itself: one wrong value, a NaN or a short result fails.
    let bad = checks::Check::new_for_test("x", &[1.0, 2.5], &[1.0, 2.0], 1e-3);
    assert!(!bad.ok);
    assert!(!checks::Check::new_for_test("x", &[f32::NAN], &[0.0], 1e-3).ok);
    assert!(!checks::Check::new_for_test("x", &[1.0], &[1.0, 2.0], 1e-3).ok);
}

#[test]
fn thirty_updates_lower_the_loss_for_lstm_and_mingru() {
    let Some(dev) = device() else { return };
    let text = TEXT.repeat(20);
    for model in ["mingru", "lstm"] {
        let config = TrainerConfig {
            model: model.into(),
            ..small()
        };
        let mut t = CharTrainer::new(&dev, &text, config).unwrap();
        let losses: Vec<f32> = (0..30)
            .map(|_| pollster::block_on(t.train_step()).unwrap())
            .collect();
        let last: f32 = losses[25..].iter().sum::<f32>() / 5.0;
        assert!(last < 0.8 * losses[0], "{model}: {losses:?}");
        assert_eq!(t.steps(), 30);
    }
}

#[test]
fn a_checkpoint_round_trips_and_streams_the_same_text() {
    let Some(dev) = device() else { return };
    let mut t = CharTrainer::new(&dev, &TEXT.repeat(20), small()).unwrap();
    for _ in 0..5 {
        pollster::block_on(t.train_step()).unwrap();
    }
    let bytes = pollster::block_on(t.checkpoint_bytes()).unwrap();
    let loaded = CharTrainer::from_checkpoint(&dev, &bytes).unwrap();
    assert_eq!(loaded.vocab(), t.vocab());
    assert_eq!(loaded.num_parameters(), t.num_parameters());
    let mut streamed = String::new();
    let a = pollster::block_on(t.generate("the ", 40, 0.8, 7, |_| ())).unwrap();
    let b = pollster::block_on(loaded.generate("the ", 40, 0.8, 7, |c| streamed.push(c))).unwrap();
    assert_eq!(a, b);
    assert_eq!(streamed, b, "every character is handed over as it comes");
    assert_eq!(b.chars().count(), 40);
    // A loaded model samples but has no text to train on.
    let mut loaded = loaded;
    assert!(pollster::block_on(loaded.train_step()).is_err());
}

#[test]
fn bad_input_is_a_typed_error() {
    let Some(dev) = device() else { return };
    let short = CharTrainer::new(&dev, "abc", small());
    assert!(
        matches!(short, Err(recur_gpu::Error::InvalidArgument { .. })),
        "{:?}",
        short.err()
    );
    let family = TrainerConfig {
        model: "transformer".into(),
        ..small()
    };
    assert!(CharTrainer::new(&dev, &TEXT.repeat(20), family).is_err());
    for junk in [&b""[..], b"not safetensors", &[0xff; 64]] {
        let e = CharTrainer::from_checkpoint(&dev, junk)
            .err()
            .expect("junk loads");
        assert!(matches!(e, recur_gpu::Error::Corrupt { .. }), "{e:?}");
    }
    let t = CharTrainer::new(&dev, &TEXT.repeat(20), small()).unwrap();
    assert!(pollster::block_on(t.generate("", 3, 1.0, 1, |_| ())).is_ok());
}

#[test]
fn the_default_model_has_a_few_hundred_thousand_parameters() {
    let Some(dev) = device() else { return };
    // A printable-ASCII vocabulary, about the bundled text's.
    let text: String = (0..40).flat_map(|_| (32u8..127).map(char::from)).collect();
    let t = CharTrainer::new(&dev, &text, TrainerConfig::default()).unwrap();
    assert_eq!(t.vocab().len(), 95);
    let n = t.num_parameters();
    assert!((300_000..450_000).contains(&n), "{n}");
    assert_eq!(t.config().model, "mingru");
}
