// One inference step of a fused LSTM / GRU / Elman RNN layer in one
// dispatch: the input projection x W_ihᵀ and the recurrent product
// h W_hhᵀ (weights transposed once, at load), both biases, and the gate
// math, for four batch rows per invocation. No activations are saved.
// Cell: define LSTM, GRU or RNN (with RELU for relu, tanh otherwise).
// F16: the weights and biases are stored as f16; x, h, c and the math are f32.
// MASKED: rows whose mask is 0 keep their state (h_out = h_in, c unchanged),
// so that a pool of streams steps only the streams that have input.
// B = batch, I = input, H = hidden, G = gates (LSTM 4, GRU 3, RNN 1), GH = G·H.
// x is read from element x_off and h_in, h_out and c from element h_off, so
// that one layer of an (L, B, ·) state is stepped where it lies.
// SUBGROUPS (subgroups of at least 8): each k's batch values are loaded by
// one lane and shuffled to the others.
// X_FROM_OUT: x is the layer below's output, read from h_out at x_off (a
// buffer may not be bound both read-only and writable in one dispatch).

#import activations
#import storage

struct Params {
    batch: u32, input: u32, hidden: u32, gates: u32,
    x_off: u32, h_off: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;             // (B, I)
@group(0) @binding(2) var<storage, read> w_ih_t: array<S>;          // (I, GH) W_ihᵀ
@group(0) @binding(3) var<storage, read> w_hh_t: array<S>;          // (H, GH) W_hhᵀ
@group(0) @binding(4) var<storage, read> bias: array<S>;            // (2, GH): b_ih, b_hh
@group(0) @binding(5) var<storage, read> h_in: array<f32>;          // (B, H)
@group(0) @binding(6) var<storage, read_write> h_out: array<f32>;   // (B, H)
@group(0) @binding(7) var<storage, read_write> c: array<f32>;       // (B, H) LSTM, in place
@group(0) @binding(8) var<storage, read> mask: array<f32>;          // (B) with MASKED

fn gh() -> u32 { return p.gates * p.hidden; }

fn xin(i: u32) -> f32 {
#ifdef X_FROM_OUT
    return h_out[i];
#else
    return x[i];
#endif
}

// acc += outer(w, v): column q is weight column q against four batch rows.
fn rank1(acc: mat4x4<f32>, w: vec4<f32>, v: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(fma(vec4<f32>(w.x), v, acc[0]), fma(vec4<f32>(w.y), v, acc[1]),
                       fma(vec4<f32>(w.z), v, acc[2]), fma(vec4<f32>(w.w), v, acc[3]));
}

// The four weight columns (indices into GH) of invocation `u`: an LSTM
// unit's gates i, f, g, o; a GRU unit's r, z, n, n (column 2 takes W_in x,
// column 3 W_hn h, which the reset gate scales); or four consecutive units
// of an Elman RNN.
fn columns(u: u32) -> vec4<u32> {
    let h = p.hidden;
#ifdef RNN
    return vec4<u32>(4u * u, 4u * u + 1u, 4u * u + 2u, 4u * u + 3u);
#else
#ifdef GRU
    return vec4<u32>(u, h + u, 2u * h + u, 2u * h + u);
#else
    return vec4<u32>(u, h + u, 2u * h + u, 3u * h + u);
#endif
#endif
}

// Which columns the input and the recurrent products feed.
fn x_select() -> vec4<f32> {
#ifdef GRU
    return vec4<f32>(1.0, 1.0, 1.0, 0.0);
#else
    return vec4<f32>(1.0);
#endif
}

fn h_select() -> vec4<f32> {
#ifdef GRU
    return vec4<f32>(1.0, 1.0, 0.0, 1.0);
#else
    return vec4<f32>(1.0);
#endif
}

fn keeps(b: u32) -> bool {
#ifdef MASKED
    return mask[b] == 0.0;
#else
    return false;
#endif
}

@compute @workgroup_size(64, 1, 1)
fn rnn_infer(@builtin(global_invocation_id) gid: vec3<u32>
#ifdef SUBGROUPS
, @builtin(subgroup_invocation_id) sid: u32
#endif
) {
    let h = p.hidden;
    let n = p.input;
    let u = gid.x;
    let b0 = gid.y * 8u;
    let r = columns(u);
    // b0 is the same for the whole workgroup; lanes past the last unit
    // compute on clamped columns (every lane reaches the shuffles) and
    // store nothing.
    if b0 >= p.batch { return; }
    let live = r.x < h;
    let rr = min(r, vec4<u32>(gh() - 1u));
    let last = vec4<u32>(p.batch - 1u);
    let ra = min(vec4<u32>(b0, b0 + 1u, b0 + 2u, b0 + 3u), last);
    let rc = min(vec4<u32>(b0 + 4u, b0 + 5u, b0 + 6u, b0 + 7u), last);
    let xa_o = ra * n + p.x_off;
    let xc_o = rc * n + p.x_off;
    let ha_o = ra * h + p.h_off;
    let hc_o = rc * h + p.h_off;
    // lo[q][i] / hi[q][i]: column q against batch row b0 + i / b0 + 4 + i,
    // the input and recurrent products summed in one accumulator (a GRU
    // keeps W_in x and W_hn h apart in columns 2 and 3: see `columns`).
    let xs = x_select();
    let hs = h_select();
    var lo = mat4x4<f32>();
    var hi = mat4x4<f32>();
    var k0 = 0u;
#ifdef SUBGROUPS
    // The batch rows are the same for every lane: lane l loads element
    // k0 + l of the eight rows, and each k is shuffled out to all lanes.
    for (; k0 + 8u <= n; k0 += 8u) {
        let kl = k0 + min(sid, 7u);
        let la = vec4<f32>(xin(xa_o.x + kl), xin(xa_o.y + kl), xin(xa_o.z + kl), xin(xa_o.w + kl));
        let lc = vec4<f32>(xin(xc_o.x + kl), xin(xc_o.y + kl), xin(xc_o.z + kl), xin(xc_o.w + kl));
        for (var kk = 0u; kk < 8u; kk++) {
            let wo = (k0 + kk) * gh();
            let w4 = xs * vec4<f32>(f32(w_ih_t[wo + rr.x]), f32(w_ih_t[wo + rr.y]), f32(w_ih_t[wo + rr.z]), f32(w_ih_t[wo + rr.w]));
            lo = rank1(lo, w4, subgroupShuffle(la, kk));
            hi = rank1(hi, w4, subgroupShuffle(lc, kk));
        }
    }
#endif
    for (var k = k0; k < n; k++) {
        let wo = k * gh();
        let w4 = xs * vec4<f32>(f32(w_ih_t[wo + rr.x]), f32(w_ih_t[wo + rr.y]), f32(w_ih_t[wo + rr.z]), f32(w_ih_t[wo + rr.w]));
        lo = rank1(lo, w4, vec4<f32>(xin(xa_o.x + k), xin(xa_o.y + k), xin(xa_o.z + k), xin(xa_o.w + k)));
        hi = rank1(hi, w4, vec4<f32>(xin(xc_o.x + k), xin(xc_o.y + k), xin(xc_o.z + k), xin(xc_o.w + k)));
    }
    k0 = 0u;
#ifdef SUBGROUPS
    for (; k0 + 8u <= h; k0 += 8u) {
        let kl = k0 + min(sid, 7u);
        let la = vec4<f32>(h_in[ha_o.x + kl], h_in[ha_o.y + kl], h_in[ha_o.z + kl], h_in[ha_o.w + kl]);
        let lc = vec4<f32>(h_in[hc_o.x + kl], h_in[hc_o.y + kl], h_in[hc_o.z + kl], h_in[hc_o.w + kl]);
        for (var kk = 0u; kk < 8u; kk++) {
            let wo = (k0 + kk) * gh();
            let w4 = hs * vec4<f32>(f32(w_hh_t[wo + rr.x]), f32(w_hh_t[wo + rr.y]), f32(w_hh_t[wo + rr.z]), f32(w_hh_t[wo + rr.w]));
            lo = rank1(lo, w4, subgroupShuffle(la, kk));
            hi = rank1(hi, w4, subgroupShuffle(lc, kk));
        }
    }
#endif
    for (var k = k0; k < h; k++) {
        let wo = k * gh();
        let w4 = hs * vec4<f32>(f32(w_hh_t[wo + rr.x]), f32(w_hh_t[wo + rr.y]), f32(w_hh_t[wo + rr.z]), f32(w_hh_t[wo + rr.w]));
        lo = rank1(lo, w4, vec4<f32>(h_in[ha_o.x + k], h_in[ha_o.y + k], h_in[ha_o.z + k], h_in[ha_o.w + k]));
        hi = rank1(hi, w4, vec4<f32>(h_in[hc_o.x + k], h_in[hc_o.y + k], h_in[hc_o.z + k], h_in[hc_o.w + k]));
    }
    if !live { return; }
    let g = gh();
    let bias4 = xs * vec4<f32>(f32(bias[rr.x]), f32(bias[rr.y]), f32(bias[rr.z]), f32(bias[rr.w]))
        + hs * vec4<f32>(f32(bias[g + rr.x]), f32(bias[g + rr.y]), f32(bias[g + rr.z]), f32(bias[g + rr.w]));
    for (var i = 0u; i < 8u; i++) {
        let b = b0 + i;
        if b >= p.batch { break; }
        var m = hi;
        if i < 4u { m = lo; }
        let j = i % 4u;
        let pre = vec4<f32>(m[0][j], m[1][j], m[2][j], m[3][j]) + bias4;
        let o = b * h + p.h_off;
#ifdef RNN
        for (var q = 0u; q < 4u; q++) {
            if r[q] >= h { break; }
            let a = pre[q];
#ifdef RELU
            var y = max(a, 0.0);
#else
            var y = tanh_f(a);
#endif
            if keeps(b) { y = h_in[o + r[q]]; }
            h_out[o + r[q]] = y;
        }
#else
        if keeps(b) {
            h_out[o + u] = h_in[o + u];
            continue;
        }
#ifdef LSTM
        let ig = sigmoid_f(pre.x);
        let fg = sigmoid_f(pre.y);
        let gg = tanh_f(pre.z);
        let og = sigmoid_f(pre.w);
        let cv = fg * c[o + u] + ig * gg;
        c[o + u] = cv;
        h_out[o + u] = og * tanh_f(cv);
#else
        let rg = sigmoid_f(pre.x);
        let zg = sigmoid_f(pre.y);
        let ng = tanh_f(pre.z + rg * pre.w);
        h_out[o + u] = (1.0 - zg) * ng + zg * h_in[o + u];
#endif
#endif
    }
}
