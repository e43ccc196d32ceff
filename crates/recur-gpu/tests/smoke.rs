mod common;
use recur_gpu::ops;

#[test]
fn smoke_matmul() {
    let Some(dev) = common::device() else { return };
    let a = common::upload(&dev, &[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let b = common::upload(&dev, &[5.0, 6.0, 7.0, 8.0], &[2, 2]);
    let c = ops::gemm::matmul(&a, &b).unwrap();
    assert_eq!(c.to_vec().unwrap(), vec![19.0, 22.0, 43.0, 50.0]);
}
