//! The README's example: a linear map and a softmax, recorded and then run
//! in one submission.

use recur::gpu::ops::{gemm, softmax};
use recur::gpu::{Device, Tensor};

fn main() -> recur::gpu::Result<()> {
    let dev = Device::new()?; // honours RECUR_ADAPTER / RECUR_BACKEND
    println!("{}", dev.info());
    let x = Tensor::from_slice(&dev, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    let w = Tensor::from_slice(&dev, &[0.5, -1.0, 0.25, 2.0, 0.0, 1.0], &[2, 3])?;
    let y = gemm::linear(&x, &w, None)?; // x @ wᵀ, recorded, not yet run
    let p = softmax::softmax(&y)?; // recorded into the same recording
    println!("{:?}", p.to_vec()?); // one submission, one readback
    Ok(())
}
