// Fused recurrent steps for LSTM, GRU and Elman RNN (PyTorch semantics and
// gate order: LSTM i,f,g,o; GRU r,z,n with b_hn inside the reset product).
// T = time, B = batch, H = hidden, G = gates (LSTM 4, GRU 3, RNN 1), GH = G·H.
// Cell: define LSTM, GRU or RNN (with RELU for relu, tanh otherwise).
//
// States live in (T+1, B, H) sequences; a step reads slot `src` and writes
// slot `dst` (forward: h0 in slot 0 and h_t in slot t+1; reverse: h0 in
// slot T and h_t in slot t), so outputs are a contiguous slice either way.
//
// `rnn_step` (one dispatch per step): the recurrent product h_prev W_hhᵀ for
//   four rows of W_hh and four batch rows per invocation (a 4x4 register
//   block), plus all the gate math; with TRAIN it saves what the backward
//   needs (LSTM i,f,g,o; GRU r,z,n and W_hn h + b_hn).
// `rnn_step_backward` (pointwise): gate gradients for step t, the carried
//   cell gradient, and GRU's direct dh·z term.
// `rnn_step_dh`: dh_prev += dgates_h W_hh, the recurrent part of the
//   hidden-state gradient (second dispatch of a backward step).
#import activations

struct Params {
    t: u32, src: u32, dst: u32, batch: u32,
    hidden: u32, gates: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn gh() -> u32 { return p.gates * p.hidden; }

#ifdef RNN_STEP
@group(0) @binding(1) var<storage, read> xproj: array<f32>;         // (T, B, GH) x W_ihᵀ + b_ih
@group(0) @binding(2) var<storage, read> w_hh_t: array<f32>;        // (H, GH) W_hhᵀ
@group(0) @binding(3) var<storage, read> b_hh: array<f32>;          // (GH)
@group(0) @binding(4) var<storage, read_write> hseq: array<f32>;    // (T+1, B, H)
@group(0) @binding(5) var<storage, read_write> cseq: array<f32>;    // (T+1, B, H) LSTM cells
@group(0) @binding(6) var<storage, read_write> saved: array<f32>;   // (T, B, 4H) with TRAIN

// The four rows of W_hh (indices into GH) that invocation `u` accumulates.
fn rows(u: u32) -> vec4<u32> {
    let h = p.hidden;
#ifdef RNN
    return vec4<u32>(4u * u, 4u * u + 1u, 4u * u + 2u, 4u * u + 3u);
#else
    return vec4<u32>(u, h + u, 2u * h + u, min(3u * h + u, gh() - 1u));
#endif
}

@compute @workgroup_size(64, 1, 1)
fn rnn_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    let h = p.hidden;
    let u = gid.x;
    let b0 = gid.y * 4u;
    let r = rows(u);
    if r.x >= h { return; }  // past the last unit (RNN: r.x = 4u)
    let rr = min(r, vec4<u32>(gh() - 1u));
    let src = p.src * p.batch * h;
    let bb = min(vec4<u32>(b0, b0 + 1u, b0 + 2u, b0 + 3u), vec4<u32>(p.batch - 1u));
    // acc[q][i]: row q of W_hh against batch row b0 + i.
    var acc = mat4x4<f32>();
    for (var k = 0u; k < h; k++) {
        let w4 = vec4<f32>(w_hh_t[k * gh() + rr.x], w_hh_t[k * gh() + rr.y], w_hh_t[k * gh() + rr.z], w_hh_t[k * gh() + rr.w]);
        let hv = vec4<f32>(hseq[src + bb.x * h + k], hseq[src + bb.y * h + k], hseq[src + bb.z * h + k], hseq[src + bb.w * h + k]);
        acc = mat4x4<f32>(fma(vec4<f32>(w4.x), hv, acc[0]), fma(vec4<f32>(w4.y), hv, acc[1]),
                          fma(vec4<f32>(w4.z), hv, acc[2]), fma(vec4<f32>(w4.w), hv, acc[3]));
    }
    for (var i = 0u; i < 4u; i++) {
        let b = b0 + i;
        if b >= p.batch { break; }
        let xo = (p.t * p.batch + b) * gh();
        let pre = vec4<f32>(acc[0][i], acc[1][i], acc[2][i], acc[3][i])
            + vec4<f32>(b_hh[rr.x], b_hh[rr.y], b_hh[rr.z], b_hh[rr.w]);
        let hi = p.dst * p.batch * h + b * h;
        let prev = src + b * h;
#ifdef LSTM
        let ig = sigmoid_f(xproj[xo + r.x] + pre.x);
        let fg = sigmoid_f(xproj[xo + r.y] + pre.y);
        let gg = tanh_f(xproj[xo + r.z] + pre.z);
        let og = sigmoid_f(xproj[xo + r.w] + pre.w);
        let c = fg * cseq[prev + u] + ig * gg;
        cseq[hi + u] = c;
        hseq[hi + u] = og * tanh_f(c);
#ifdef TRAIN
        let so = (p.t * p.batch + b) * 4u * h;
        saved[so + u] = ig; saved[so + h + u] = fg; saved[so + 2u * h + u] = gg; saved[so + 3u * h + u] = og;
#endif
#endif
#ifdef GRU
        let rg = sigmoid_f(xproj[xo + r.x] + pre.x);
        let zg = sigmoid_f(xproj[xo + r.y] + pre.y);
        let hn = pre.z;
        let ng = tanh_f(xproj[xo + r.z] + rg * hn);
        hseq[hi + u] = (1.0 - zg) * ng + zg * hseq[prev + u];
#ifdef TRAIN
        let so = (p.t * p.batch + b) * 4u * h;
        saved[so + u] = rg; saved[so + h + u] = zg; saved[so + 2u * h + u] = ng; saved[so + 3u * h + u] = hn;
#endif
#endif
#ifdef RNN
        let a = vec4<f32>(xproj[xo + rr.x], xproj[xo + rr.y], xproj[xo + rr.z], xproj[xo + rr.w]) + pre;
#ifdef RELU
        let y = max(a, vec4<f32>(0.0));
#else
        let y = vec4<f32>(tanh_f(a.x), tanh_f(a.y), tanh_f(a.z), tanh_f(a.w));
#endif
        for (var q = 0u; q < 4u; q++) {
            if r[q] < h { hseq[hi + r[q]] = y[q]; }
        }
#endif
    }
}
#endif

#ifdef RNN_STEP_BACKWARD
@group(0) @binding(1) var<storage, read> dout: array<f32>;          // (T, B, H) output gradient
@group(0) @binding(2) var<storage, read> hseq: array<f32>;          // (T+1, B, H)
@group(0) @binding(3) var<storage, read> cseq: array<f32>;          // (T+1, B, H) LSTM
@group(0) @binding(4) var<storage, read> saved: array<f32>;         // (T, B, 4H) LSTM, GRU
@group(0) @binding(5) var<storage, read> dh_in: array<f32>;         // (B, H) carried dh for h_t
@group(0) @binding(6) var<storage, read> dc_in: array<f32>;         // (B, H) carried dc for c_t
@group(0) @binding(7) var<storage, read_write> dgx: array<f32>;     // (T, B, GH) input-side pre-activation grads
@group(0) @binding(8) var<storage, read_write> dgh: array<f32>;     // (T, B, GH) hidden-side (GRU)
@group(0) @binding(9) var<storage, read_write> dh_out: array<f32>;  // (B, H) dh for h_prev, direct part
@group(0) @binding(10) var<storage, read_write> dc_out: array<f32>; // (B, H) dc for c_prev

@compute @workgroup_size(64, 1, 1)
fn rnn_step_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let h = p.hidden;
    let j = gid.x;
    let b = gid.y;
    if j >= h || b >= p.batch { return; }
    let k = b * h + j;
    let dh = dh_in[k] + dout[p.t * p.batch * h + k];
    let go = (p.t * p.batch + b) * gh();
#ifdef LSTM
    let so = (p.t * p.batch + b) * 4u * h;
    let ig = saved[so + j]; let fg = saved[so + h + j]; let gg = saved[so + 2u * h + j]; let og = saved[so + 3u * h + j];
    let c = cseq[p.dst * p.batch * h + k];
    let tc = tanh_f(c);
    let dc = dc_in[k] + dh * og * (1.0 - tc * tc);
    dgx[go + j] = dc * gg * ig * (1.0 - ig);
    dgx[go + h + j] = dc * cseq[p.src * p.batch * h + k] * fg * (1.0 - fg);
    dgx[go + 2u * h + j] = dc * ig * (1.0 - gg * gg);
    dgx[go + 3u * h + j] = dh * tc * og * (1.0 - og);
    dc_out[k] = dc * fg;
    dh_out[k] = 0.0;
#endif
#ifdef GRU
    let so = (p.t * p.batch + b) * 4u * h;
    let rg = saved[so + j]; let zg = saved[so + h + j]; let ng = saved[so + 2u * h + j]; let hn = saved[so + 3u * h + j];
    let dn = dh * (1.0 - zg) * (1.0 - ng * ng);
    let dz = dh * (hseq[p.src * p.batch * h + k] - ng) * zg * (1.0 - zg);
    let dr = dn * hn * rg * (1.0 - rg);
    dgx[go + j] = dr; dgx[go + h + j] = dz; dgx[go + 2u * h + j] = dn;
    dgh[go + j] = dr; dgh[go + h + j] = dz; dgh[go + 2u * h + j] = dn * rg;
    dh_out[k] = dh * zg;
#endif
#ifdef RNN
    let y = hseq[p.dst * p.batch * h + k];
#ifdef RELU
    dgx[go + j] = select(0.0, dh, y > 0.0);
#else
    dgx[go + j] = dh * (1.0 - y * y);
#endif
    dh_out[k] = 0.0;
#endif
}
#endif

#ifdef RNN_STEP_DH
@group(0) @binding(1) var<storage, read> dg: array<f32>;            // (T, B, GH) hidden-side grads
@group(0) @binding(2) var<storage, read> w_hh: array<f32>;          // (GH, H)
@group(0) @binding(3) var<storage, read_write> dh_out: array<f32>;  // (B, H), accumulated into

// dh_out[b, k] += Σ_r dg[t, b, r] W_hh[r, k], four batch rows per invocation.
@compute @workgroup_size(64, 1, 1)
fn rnn_step_dh(@builtin(global_invocation_id) gid: vec3<u32>) {
    let h = p.hidden;
    let k = gid.x;
    let b0 = gid.y * 4u;
    if k >= h { return; }
    let bb = min(vec4<u32>(b0, b0 + 1u, b0 + 2u, b0 + 3u), vec4<u32>(p.batch - 1u));
    let base = p.t * p.batch * gh();
    var acc = vec4<f32>(0.0);
    for (var r = 0u; r < gh(); r++) {
        let w = w_hh[r * h + k];
        let g = vec4<f32>(dg[base + bb.x * gh() + r], dg[base + bb.y * gh() + r], dg[base + bb.z * gh() + r], dg[base + bb.w * gh() + r]);
        acc = fma(vec4<f32>(w), g, acc);
    }
    for (var i = 0u; i < 4u; i++) {
        let b = b0 + i;
        if b < p.batch { dh_out[b * h + k] += acc[i]; }
    }
}
#endif
