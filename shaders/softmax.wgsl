// Softmax family over the last axis of a tensor viewed as (R, C):
// R = rows, C = classes. One workgroup per row (grid-stride over rows).
// `softmax_rows`: softmax, or log-softmax with LOG.
// `cross_entropy_rows`: per-row loss -log softmax(x)[target] and the
//   unscaled gradient softmax(x) - onehot(target); rows whose target equals
//   ignore_index get zero loss and gradient and do not count. A target ≥ C
//   (other than ignore_index) is reported (shared/index_check.wgsl) and the
//   row does not count.
// `cross_entropy_reduce`: one workgroup sums the rows' losses and counts into
//   (loss, scale), with loss = sum / count (mean) or sum, scale = 1/count or 1.
// `cross_entropy_scale`: grad *= scale, so grad = d loss / d logits.

struct Params {
    rows: u32, cols: u32, ignore_index: u32, mean: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;
var<workgroup> scratch: array<f32, 256>;

fn reduce_max(lid: u32, v: f32) -> f32 {
    scratch[lid] = v;
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if lid < s { scratch[lid] = max(scratch[lid], scratch[lid + s]); }
    }
    workgroupBarrier();
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

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

#ifdef SOFTMAX_ROWS
@group(0) @binding(1) var<storage, read> x: array<f32>;        // (R, C)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // (R, C)

@compute @workgroup_size(256)
fn softmax_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var row = wid.x; row < p.rows; row += nwg.x) {
        let base = row * p.cols;
        var m = -3.402823e38;
        for (var i = lid; i < p.cols; i += WG) { m = max(m, x[base + i]); }
        m = reduce_max(lid, m);
        var s = 0.0;
        for (var i = lid; i < p.cols; i += WG) { s += exp(x[base + i] - m); }
        s = reduce_sum(lid, s);
#ifdef LOG
        let ls = log(s);
        for (var i = lid; i < p.cols; i += WG) { y[base + i] = x[base + i] - m - ls; }
#else
        for (var i = lid; i < p.cols; i += WG) { y[base + i] = exp(x[base + i] - m) / s; }
#endif
    }
}
#endif

#ifdef CROSS_ENTROPY_ROWS
@group(0) @binding(1) var<storage, read> x: array<f32>;           // (R, C) logits
@group(0) @binding(2) var<storage, read> targets: array<u32>;     // (R)
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;  // (R, C)
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;  // (R, 2): loss, counted
@group(0) @binding(5) var<storage, read_write> index_errors: array<atomic<u32>, 4>;
#import index_check

@compute @workgroup_size(256)
fn cross_entropy_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var row = wid.x; row < p.rows; row += nwg.x) {
        let base = row * p.cols;
        let t = targets[row];
        let counted = t != p.ignore_index && t < p.cols;
        if lid == 0u && t != p.ignore_index && t >= p.cols { report_index(2u, t, p.cols); }
        var m = -3.402823e38;
        for (var i = lid; i < p.cols; i += WG) { m = max(m, x[base + i]); }
        m = reduce_max(lid, m);
        var s = 0.0;
        for (var i = lid; i < p.cols; i += WG) { s += exp(x[base + i] - m); }
        s = reduce_sum(lid, s);
        for (var i = lid; i < p.cols; i += WG) {
            let g = exp(x[base + i] - m) / s - select(0.0, 1.0, i == t);
            grad[base + i] = select(0.0, g, counted);
        }
        if lid == 0u {
            let xt = x[base + min(t, p.cols - 1u)];
            row_loss[2u * row] = select(0.0, m + log(s) - xt, counted);
            row_loss[2u * row + 1u] = select(0.0, 1.0, counted);
        }
    }
}
#endif

#ifdef CROSS_ENTROPY_REDUCE
@group(0) @binding(1) var<storage, read> row_loss: array<f32>;  // (R, 2)
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // (2): loss, scale

@compute @workgroup_size(256)
fn cross_entropy_reduce(@builtin(local_invocation_index) lid: u32) {
    var l = 0.0;
    var c = 0.0;
    for (var i = lid; i < p.rows; i += WG) {
        l += row_loss[2u * i];
        c += row_loss[2u * i + 1u];
    }
    l = reduce_sum(lid, l);
    c = reduce_sum(lid, c);
    if lid == 0u {
        let scale = select(1.0, 1.0 / max(c, 1.0), p.mean != 0u);
        out[0] = l * scale;
        out[1] = scale;
    }
}
#endif

#ifdef CROSS_ENTROPY_SCALE
@group(0) @binding(1) var<storage, read> out: array<f32>;          // (2): loss, scale
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;   // (R, C)

@compute @workgroup_size(256)
fn cross_entropy_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let scale = out[1];
    let n = p.rows * p.cols;
    for (var i = gid.x; i < n; i += nwg.x * WG) { grad[i] *= scale; }
}
#endif
