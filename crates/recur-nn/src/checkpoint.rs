//! Checkpoints as safetensors files: named f32 tensors (PyTorch names for
//! model parameters) plus string metadata (step, RNG state, ...).
//!
//! Writes are atomic: the file is written to a temporary name in the same
//! directory, flushed to disk, then renamed over the target, so a crash
//! leaves either the old checkpoint or the new one, never a torn file.
//! Loading a truncated, corrupt or mismatched file is a typed error.

use std::collections::HashMap;
use std::path::Path;

use recur_gpu::{Device, Error, Result, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

/// Little-endian values of `dtype` widened to f32: F32, F16, BF16 (what
/// trained checkpoints are often saved in) and F64; `None` for the rest.
fn widen(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        _ => return None,
    })
}

fn io(op: &'static str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Saves `tensors` (read back from the GPU) and `metadata` to `path`,
/// atomically (native only: a browser has [`to_bytes_async`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn save(
    path: &Path,
    tensors: &[(String, &Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    use std::io::Write;
    let op = "checkpoint::save";
    let bytes = pollster::block_on(to_bytes_async(tensors, metadata))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(op, &tmp, e))?;
    f.write_all(&bytes).map_err(|e| io(op, &tmp, e))?;
    f.sync_all().map_err(|e| io(op, &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io(op, path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable; not every platform can open a directory.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// `tensors` (read back from the GPU) and `metadata` as safetensors bytes:
/// what [`save`] writes and [`Checkpoint::from_bytes`] reads.
pub async fn to_bytes_async(
    tensors: &[(String, &Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<Vec<u8>> {
    let op = "checkpoint::save";
    let mut data = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t.to_vec_async().await?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        data.push((name.clone(), t.shape().to_vec(), bytes));
    }
    let views = data
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Corrupt {
                    op,
                    what: format!("{n}: {e}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata.clone())).map_err(|e| Error::Corrupt {
        op,
        what: e.to_string(),
    })
}

/// A loaded checkpoint: tensors by name, on the host until uploaded.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    /// The metadata saved with it.
    pub metadata: HashMap<String, String>,
}

impl Checkpoint {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let op = "checkpoint::load";
        let bytes = std::fs::read(path).map_err(|e| io(op, path, e))?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            Error::Corrupt { what, .. } => Error::Corrupt {
                op,
                what: format!("{}: {what}", path.display()),
            },
            other => other,
        })
    }

    /// Parses a checkpoint from memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let op = "checkpoint::load";
        let corrupt = |what: String| Error::Corrupt { op, what };
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| corrupt(format!("not a safetensors file: {e}")))?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| corrupt(format!("not a safetensors file: {e}")))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let v = widen(view.dtype(), view.data()).ok_or_else(|| {
                corrupt(format!(
                    "{name}: dtype {:?}, expected a float type",
                    view.dtype()
                ))
            })?;
            tensors.insert(name, (view.shape().to_vec(), v));
        }
        Ok(Self {
            tensors,
            metadata: meta.metadata().clone().unwrap_or_default(),
        })
    }

    /// Names of the saved tensors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Tensor `name` on the host: its shape and values.
    pub fn host(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.tensors
            .get(name)
            .map(|(s, v)| (s.as_slice(), v.as_slice()))
    }

    /// Uploads tensor `name`, checking it has `shape`.
    pub fn tensor(&self, device: &Device, name: &str, shape: &[usize]) -> Result<Tensor> {
        let op = "checkpoint::tensor";
        let (s, v) = self.tensors.get(name).ok_or_else(|| Error::Corrupt {
            op,
            what: format!("no tensor named {name:?}"),
        })?;
        if s != shape {
            return Err(Error::Corrupt {
                op,
                what: format!("{name} has shape {s:?}, the model expects {shape:?}"),
            });
        }
        Tensor::from_slice(device, v, s)
    }

    /// A metadata value parsed as `T`.
    pub fn meta<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        self.metadata
            .get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Corrupt {
                op: "checkpoint::meta",
                what: format!("missing or malformed metadata {key:?}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint saved in bf16, f16 or f64 (as trained models often are)
    /// loads widened to f32; integer tensors are refused with a typed error.
    #[test]
    fn half_precision_checkpoints_load_as_f32() {
        let vals = [1.5f32, -0.25, 3.0];
        let bf: Vec<u8> = vals
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        let hf: Vec<u8> = vals
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let df: Vec<u8> = vals
            .iter()
            .flat_map(|v| (*v as f64).to_le_bytes())
            .collect();
        let views = vec![
            (
                "a".to_string(),
                TensorView::new(Dtype::BF16, vec![3], &bf).unwrap(),
            ),
            (
                "b".to_string(),
                TensorView::new(Dtype::F16, vec![3], &hf).unwrap(),
            ),
            (
                "c".to_string(),
                TensorView::new(Dtype::F64, vec![3], &df).unwrap(),
            ),
        ];
        let bytes = safetensors::serialize(views, None).unwrap();
        let ck = Checkpoint::from_bytes(&bytes).unwrap();
        for n in ["a", "b", "c"] {
            assert_eq!(ck.tensors[n].1, vals.to_vec(), "{n}");
        }
        let ints: Vec<u8> = [1i32, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = vec![(
            "i".to_string(),
            TensorView::new(Dtype::I32, vec![2], &ints).unwrap(),
        )];
        let bytes = safetensors::serialize(views, None).unwrap();
        assert!(matches!(
            Checkpoint::from_bytes(&bytes),
            Err(Error::Corrupt { .. })
        ));
    }
}
