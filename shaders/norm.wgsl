// Row normalisation over the last axis of a tensor viewed as (R, C):
// LayerNorm (Ba et al. 2016) or, with RMS, RMSNorm (Zhang & Sennrich 2019).
// One workgroup per row (grid-stride over rows), f32 throughout.
//
// `norm_rows`:     xhat = (x - mean) * rstd   (RMS: xhat = x * rstd)
//                  rstd = 1 / sqrt(var + eps)  (RMS: 1 / sqrt(mean(x²) + eps))
//                  y = xhat * gamma + beta     (gamma/beta when AFFINE/BIAS)
//                  stats[r] = (mean, rstd)     (RMS: mean = 0)
// `norm_rows_backward`, with g = dy * gamma (dy without AFFINE):
//                  dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
//                  (RMS: dx = rstd * (g - xhat * mean(g * xhat)))
//                  dyxhat = dy * xhat, summed over rows by the host for dgamma.

struct Params {
    rows: u32, cols: u32, affine: u32, bias: u32,
    eps: f32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 64u;
var<workgroup> scratch: array<f32, 64>;

fn reduce_sum(lid: u32, v: f32) -> f32 {
    scratch[lid] = v;
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if lid < s { scratch[lid] += scratch[lid + s]; }
    }
    workgroupBarrier();
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

#ifdef NORM_ROWS
@group(0) @binding(1) var<storage, read> x: array<f32>;            // (R, C)
@group(0) @binding(2) var<storage, read> gamma: array<f32>;        // (C), read with affine
@group(0) @binding(3) var<storage, read> beta: array<f32>;         // (C), read with bias
@group(0) @binding(4) var<storage, read_write> y: array<f32>;      // (R, C)
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;  // (R, 2): mean, rstd

@compute @workgroup_size(64)
fn norm_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = f32(p.cols);
    for (var row = wid.x; row < p.rows; row += nwg.x) {
        let base = row * p.cols;
#ifdef RMS
        let mean = 0.0;
#else
        var s = 0.0;
        for (var i = lid; i < p.cols; i += WG) { s += x[base + i]; }
        let mean = reduce_sum(lid, s) / n;
#endif
        var q = 0.0;
        for (var i = lid; i < p.cols; i += WG) {
            let d = x[base + i] - mean;
            q += d * d;
        }
        let rstd = inverseSqrt(reduce_sum(lid, q) / n + p.eps);
        for (var i = lid; i < p.cols; i += WG) {
            var v = (x[base + i] - mean) * rstd;
            if p.affine != 0u { v *= gamma[i]; }
            if p.bias != 0u { v += beta[i]; }
            y[base + i] = v;
        }
        if lid == 0u {
            stats[2u * row] = mean;
            stats[2u * row + 1u] = rstd;
        }
    }
}
#endif

#ifdef NORM_ROWS_BACKWARD
@group(0) @binding(1) var<storage, read> x: array<f32>;             // (R, C)
@group(0) @binding(2) var<storage, read> gamma: array<f32>;         // (C), read with affine
@group(0) @binding(3) var<storage, read> stats: array<f32>;         // (R, 2)
@group(0) @binding(4) var<storage, read> dy: array<f32>;            // (R, C)
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;      // (R, C)
@group(0) @binding(6) var<storage, read_write> dyxhat: array<f32>;  // (R, C)

@compute @workgroup_size(64)
fn norm_rows_backward(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = f32(p.cols);
    for (var row = wid.x; row < p.rows; row += nwg.x) {
        let base = row * p.cols;
        let mean = stats[2u * row];
        let rstd = stats[2u * row + 1u];
        var sg = 0.0;
        var sgx = 0.0;
        for (var i = lid; i < p.cols; i += WG) {
            var g = dy[base + i];
            if p.affine != 0u { g *= gamma[i]; }
            sg += g;
            sgx += g * (x[base + i] - mean) * rstd;
        }
#ifdef RMS
        let mg = 0.0;
#else
        let mg = reduce_sum(lid, sg) / n;
#endif
        let mgx = reduce_sum(lid, sgx) / n;
        for (var i = lid; i < p.cols; i += WG) {
            let xhat = (x[base + i] - mean) * rstd;
            var g = dy[base + i];
            dyxhat[base + i] = g * xhat;
            if p.affine != 0u { g *= gamma[i]; }
            dx[base + i] = rstd * (g - mg - xhat * mgx);
        }
    }
}
#endif
