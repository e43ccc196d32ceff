use crate::ops::gemm::{Gemm, GemmShape};

/// CPU GEMM with the same semantics as [`Gemm::run_into`]: `c` holds the old
/// C (read when beta ≠ 0) and receives the result.
pub fn gemm(cfg: &Gemm, s: &GemmShape, a: &[f32], b: &[f32], bias: Option<&[f32]>, c: &mut [f32]) {
    let GemmShape {
        z,
        m,
        n,
        k,
        shared_b,
    } = *s;
    let (lda, ldb) = (
        if cfg.trans_a { m } else { k },
        if cfg.trans_b { k } else { n },
    );
    for zi in 0..z {
        let a = &a[zi * m * k..];
        let b = if shared_b { b } else { &b[zi * k * n..] };
        let c = &mut c[zi * m * n..];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for kk in 0..k {
                    let av = if cfg.trans_a {
                        a[kk * lda + i]
                    } else {
                        a[i * lda + kk]
                    };
                    let bv = if cfg.trans_b {
                        b[j * ldb + kk]
                    } else {
                        b[kk * ldb + j]
                    };
                    acc += av as f64 * bv as f64;
                }
                let mut r = cfg.alpha as f64 * acc;
                if cfg.beta != 0.0 {
                    r += cfg.beta as f64 * c[i * n + j] as f64;
                }
                if let Some(bias) = bias {
                    r += bias[j] as f64;
                }
                c[i * n + j] = super::activate(r, cfg.activation) as f32;
            }
        }
    }
}
