//! Checkpoints: resuming continues with exactly the losses of an
//! uninterrupted run; truncated, corrupt and mismatched files are typed errors.

use std::collections::HashMap;

mod common;

use common::{fresh, train_step, Run, B, H, V};
use recur::gpu::{Device, Error};
use recur::nn::checkpoint::{self, Checkpoint};
use recur::nn::{Module, Tensor, Var};

fn save(r: &Run, path: &std::path::Path) {
    let params = r.model.named_parameters();
    let mut tensors: Vec<(String, &Tensor)> =
        params.iter().map(|(n, v)| (n.clone(), v.value())).collect();
    for (i, (m, v)) in r.opt.moments().iter().enumerate() {
        tensors.push((format!("optim.m.{i}"), m));
        tensors.push((format!("optim.v.{i}"), v));
    }
    tensors.push(("state.h".into(), r.h.as_ref().unwrap().value()));
    tensors.push(("state.c".into(), r.c.as_ref().unwrap().value()));
    let meta = HashMap::from([
        ("step".to_string(), r.step.to_string()),
        ("optim.steps".to_string(), r.opt.steps().to_string()),
        (
            "rng".to_string(),
            r.model.rnn.dropout_rng_state().to_string(),
        ),
    ]);
    checkpoint::save(path, &tensors, &meta).unwrap();
}

fn restore(dev: &Device, path: &std::path::Path) -> Run {
    let ck = Checkpoint::load(path).unwrap();
    let mut r = fresh(dev);
    r.model.load_parameters(dev, &ck, "").unwrap();
    let moments = r
        .opt
        .moments()
        .iter()
        .enumerate()
        .map(|(i, (m, _))| {
            (
                ck.tensor(dev, &format!("optim.m.{i}"), m.shape()).unwrap(),
                ck.tensor(dev, &format!("optim.v.{i}"), m.shape()).unwrap(),
            )
        })
        .collect();
    r.opt
        .restore(moments, ck.meta("optim.steps").unwrap())
        .unwrap();
    r.h = Some(Var::new(ck.tensor(dev, "state.h", &[2, B, H]).unwrap()));
    r.c = Some(Var::new(ck.tensor(dev, "state.c", &[2, B, H]).unwrap()));
    r.model.rnn.set_dropout_rng_state(ck.meta("rng").unwrap());
    r.step = ck.meta("step").unwrap();
    r
}

#[test]
fn resuming_from_a_checkpoint_reproduces_the_uninterrupted_losses() {
    let dev = match Device::new() {
        Ok(d) => d,
        Err(e) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but no adapter: {e}"
            );
            return;
        }
    };
    let mut straight = fresh(&dev);
    let want: Vec<f32> = (0..12).map(|_| train_step(&dev, &mut straight)).collect();
    let dir = std::env::temp_dir().join(format!("recur-ck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.safetensors");
    let mut first = fresh(&dev);
    let mut got: Vec<f32> = (0..6).map(|_| train_step(&dev, &mut first)).collect();
    save(&first, &path);
    drop(first);
    let mut resumed = restore(&dev, &path);
    got.extend((0..6).map(|_| train_step(&dev, &mut resumed)));
    assert_eq!(got, want, "resumed losses differ");
    assert!(want[11] < want[0], "the run should learn: {want:?}");

    // Truncated, corrupt and mismatched files are typed errors.
    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        Checkpoint::load(&truncated),
        Err(Error::Corrupt { .. })
    ));
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(
        &garbage,
        b"\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x7fnot a checkpoint",
    )
    .unwrap();
    assert!(matches!(
        Checkpoint::load(&garbage),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        Checkpoint::load(&dir.join("missing.safetensors")),
        Err(Error::Io { .. })
    ));
    let ck = Checkpoint::load(&path).unwrap();
    assert!(matches!(
        ck.tensor(&dev, "out.weight", &[V, H + 1]),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        ck.tensor(&dev, "no.such", &[1]),
        Err(Error::Corrupt { .. })
    ));
    assert!(ck.meta::<u64>("nope").is_err());
    assert!(ck.names().count() > 10);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the atomic write left a temporary file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
