//! Causal depthwise 1-D convolution (channels-last) and its backward, f64.

/// y (B, L, D) for x (B, L, D), w (D, W), bias (D), state (B, W−1, D).
pub fn causal_conv1d(
    (b, l, d, w): (usize, usize, usize, usize),
    x: &[f64],
    weight: &[f64],
    bias: Option<&[f64]>,
    state: Option<&[f64]>,
) -> Vec<f64> {
    let input = |bi: usize, s: isize, di: usize| -> f64 {
        if s >= 0 {
            x[(bi * l + s as usize) * d + di]
        } else {
            state.map_or(0.0, |st| {
                st[(bi * (w - 1) + (w as isize - 1 + s) as usize) * d + di]
            })
        }
    };
    let mut y = vec![0.0; b * l * d];
    for bi in 0..b {
        for t in 0..l {
            for di in 0..d {
                let mut acc = bias.map_or(0.0, |v| v[di]);
                for k in 0..w {
                    acc += weight[di * w + k]
                        * input(bi, t as isize - (w as isize - 1) + k as isize, di);
                }
                y[(bi * l + t) * d + di] = acc;
            }
        }
    }
    y
}

/// (dx, dweight, dbias, dstate) for upstream dy (B, L, D).
pub fn causal_conv1d_backward(
    (b, l, d, w): (usize, usize, usize, usize),
    x: &[f64],
    weight: &[f64],
    state: Option<&[f64]>,
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; b * l * d];
    let mut dw = vec![0.0; d * w];
    let mut dbias = vec![0.0; d];
    let mut dstate = vec![0.0; b * (w - 1) * d];
    for bi in 0..b {
        for t in 0..l {
            for di in 0..d {
                let g = dy[(bi * l + t) * d + di];
                dbias[di] += g;
                for k in 0..w {
                    let s = t as isize - (w as isize - 1) + k as isize;
                    if s >= 0 {
                        let i = (bi * l + s as usize) * d + di;
                        dx[i] += weight[di * w + k] * g;
                        dw[di * w + k] += g * x[i];
                    } else if let Some(st) = state {
                        let i = (bi * (w - 1) + (w as isize - 1 + s) as usize) * d + di;
                        dstate[i] += weight[di * w + k] * g;
                        dw[di * w + k] += g * st[i];
                    }
                }
            }
        }
    }
    (dx, dw, dbias, dstate)
}
