// Fused recurrent steps for LSTM, GRU and Elman RNN (PyTorch semantics and
// gate order: LSTM i,f,g,o; GRU r,z,n with b_hn inside the reset product).
// T = time, B = batch, H = hidden, G = gates (LSTM 4, GRU 3, RNN 1), GH = G·H.
// Cell: define LSTM, GRU or RNN (with RELU for relu, tanh otherwise).
// F16: the sequences and weights are stored as f16 (shared/storage.wgsl);
// the recurrent product and the gate math run in f32.
//
// States live in (T+1, B, H) sequences; a step reads slot `src` and writes
// slot `dst` (forward: h0 in slot 0 and h_t in slot t+1; reverse: h0 in
// slot T and h_t in slot t), so outputs are a contiguous slice either way.
//
// `rnn_step` (one dispatch per step): the recurrent product h_prev W_hhᵀ for
//   four rows of W_hh and eight batch rows per invocation (two 4x4 register
//   blocks; NARROW: four batch rows, one block, twice the workgroups for
//   GPUs that a small batch leaves idle), plus all the gate math; with TRAIN
//   it saves what the backward needs (LSTM i,f,g,o; GRU r,z,n and
//   W_hn h + b_hn).
// `rnn_persistent`: the whole sequence in one dispatch (see below).
// The backward is in rnn_backward.wgsl.
#import activations
#import rnn_params
#import storage

// Both entry points run the forward recurrence over the same bindings.
#ifdef RNN_STEP
#define FORWARD
#endif
#ifdef RNN_PERSISTENT
#define FORWARD
#endif

// acc += outer(w, v): column q of the block is W_hh row q against a batch vector.
fn rank1(acc: mat4x4<f32>, w: vec4<f32>, v: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(fma(vec4<f32>(w.x), v, acc[0]), fma(vec4<f32>(w.y), v, acc[1]),
                       fma(vec4<f32>(w.z), v, acc[2]), fma(vec4<f32>(w.w), v, acc[3]));
}

#ifdef FORWARD
@group(0) @binding(1) var<storage, read> xproj: array<S>;         // (T, B, GH) x W_ihᵀ + b_ih
@group(0) @binding(2) var<storage, read> w_hh_t: array<S>;        // (H, GH) W_hhᵀ
@group(0) @binding(3) var<storage, read> b_hh: array<S>;          // (GH)
@group(0) @binding(4) var<storage, read_write> hseq: array<S>;    // (T+1, B, H)
@group(0) @binding(5) var<storage, read_write> cseq: array<S>;    // (T+1, B, H) LSTM cells
@group(0) @binding(6) var<storage, read_write> saved: array<S>;   // (T, B, 4H) with TRAIN

// Gate math of unit u, batch row b, at time t, from the recurrent
// pre-activations `pre` (rows u, H+u, 2H+u, 3H+u of h_prev W_hhᵀ + b_hh).
// Writes h (and c, and what the backward needs) into slot `dst`.
fn gated_update(u: u32, b: u32, pre: vec4<f32>, t: u32, src: u32, dst: u32) -> f32 {
    let h = p.hidden;
    let xo = (t * p.batch + b) * gh();
    let hi = dst * p.batch * h + b * h + u;
    let prev = src * p.batch * h + b * h + u;
    let so = (t * p.batch + b) * 4u * h;
#ifdef LSTM
    let ig = sigmoid_f(f32(xproj[xo + u]) + pre.x);
    let fg = sigmoid_f(f32(xproj[xo + h + u]) + pre.y);
    let gg = tanh_f(f32(xproj[xo + 2u * h + u]) + pre.z);
    let og = sigmoid_f(f32(xproj[xo + 3u * h + u]) + pre.w);
    let c = fg * f32(cseq[prev]) + ig * gg;
    let hv = og * tanh_f(c);
    cseq[hi] = S(c);
    let s4 = vec4<f32>(ig, fg, gg, og);
#else
    let rg = sigmoid_f(f32(xproj[xo + u]) + pre.x);
    let zg = sigmoid_f(f32(xproj[xo + h + u]) + pre.y);
    let ng = tanh_f(f32(xproj[xo + 2u * h + u]) + rg * pre.z);
    let hv = (1.0 - zg) * ng + zg * f32(hseq[prev]);
    let s4 = vec4<f32>(rg, zg, ng, pre.z);
#endif
    hseq[hi] = S(hv);
#ifdef TRAIN
    saved[so + u] = S(s4.x); saved[so + h + u] = S(s4.y); saved[so + 2u * h + u] = S(s4.z); saved[so + 3u * h + u] = S(s4.w);
#endif
    return hv;
}

// Elman update of unit u from its pre-activation a (without x W_ihᵀ + b_ih).
fn elman_update(u: u32, b: u32, a: f32, t: u32, dst: u32) -> f32 {
    let x = f32(xproj[(t * p.batch + b) * gh() + u]) + a;
#ifdef RELU
    let y = max(x, 0.0);
#else
    let y = tanh_f(x);
#endif
    hseq[dst * p.batch * p.hidden + b * p.hidden + u] = S(y);
    return y;
}
#endif

#ifdef RNN_STEP
// Batch rows per invocation.
#ifdef NARROW
const BROWS: u32 = 4u;
#else
const BROWS: u32 = 8u;
#endif

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
fn rnn_step(@builtin(global_invocation_id) gid: vec3<u32>
#ifdef SUBGROUPS
, @builtin(subgroup_invocation_id) sid: u32
#endif
) {
    let h = p.hidden;
    let u = gid.x;
    let b0 = gid.y * BROWS;
    let r = rows(u);
    // Invocations past the last unit (RNN: r.x = 4u) compute on clamped
    // indices and store nothing, so that every lane reaches the shuffles.
    let live = r.x < h;
    let rr = min(r, vec4<u32>(gh() - 1u));
    let src = p.src * p.batch * h;
    let last = vec4<u32>(p.batch - 1u);
    let ba = min(vec4<u32>(b0, b0 + 1u, b0 + 2u, b0 + 3u), last) * h + src;
    let bc = min(vec4<u32>(b0 + 4u, b0 + 5u, b0 + 6u, b0 + 7u), last) * h + src;
    // lo[q][i] / hi[q][i]: row q of W_hh against batch row b0 + i / b0 + 4 + i.
    var lo = mat4x4<f32>();
    var hi = mat4x4<f32>();
    var k0 = 0u;
#ifdef SUBGROUPS
    // h_prev is the same for every lane (one batch group per workgroup): lane
    // l loads step k0 + l of the eight rows, and each step is shuffled out.
    for (; k0 + 8u <= h; k0 += 8u) {
        let kl = k0 + min(sid, 7u);
        let la = vec4<f32>(f32(hseq[ba.x + kl]), f32(hseq[ba.y + kl]), f32(hseq[ba.z + kl]), f32(hseq[ba.w + kl]));
#ifndef NARROW
        let lc = vec4<f32>(f32(hseq[bc.x + kl]), f32(hseq[bc.y + kl]), f32(hseq[bc.z + kl]), f32(hseq[bc.w + kl]));
#endif
        for (var kk = 0u; kk < 8u; kk++) {
            let wo = (k0 + kk) * gh();
            let w4 = vec4<f32>(f32(w_hh_t[wo + rr.x]), f32(w_hh_t[wo + rr.y]), f32(w_hh_t[wo + rr.z]), f32(w_hh_t[wo + rr.w]));
            lo = rank1(lo, w4, subgroupShuffle(la, kk));
#ifndef NARROW
            hi = rank1(hi, w4, subgroupShuffle(lc, kk));
#endif
        }
    }
#endif
    for (; k0 < h; k0++) {
        let wo = k0 * gh();
        let w4 = vec4<f32>(f32(w_hh_t[wo + rr.x]), f32(w_hh_t[wo + rr.y]), f32(w_hh_t[wo + rr.z]), f32(w_hh_t[wo + rr.w]));
        lo = rank1(lo, w4, vec4<f32>(f32(hseq[ba.x + k0]), f32(hseq[ba.y + k0]), f32(hseq[ba.z + k0]), f32(hseq[ba.w + k0])));
#ifndef NARROW
        hi = rank1(hi, w4, vec4<f32>(f32(hseq[bc.x + k0]), f32(hseq[bc.y + k0]), f32(hseq[bc.z + k0]), f32(hseq[bc.w + k0])));
#endif
    }
    if !live { return; }
    let bias = vec4<f32>(f32(b_hh[rr.x]), f32(b_hh[rr.y]), f32(b_hh[rr.z]), f32(b_hh[rr.w]));
    for (var i = 0u; i < BROWS; i++) {
        let b = b0 + i;
        if b >= p.batch { break; }
        var acc = hi;
        if i < 4u { acc = lo; }
        let j = i % 4u;
        let pre = vec4<f32>(acc[0][j], acc[1][j], acc[2][j], acc[3][j]) + bias;
#ifdef RNN
        for (var q = 0u; q < 4u; q++) {
            if r[q] < h { elman_update(r[q], b, pre[q], p.t, p.dst); }
        }
#else
        gated_update(u, b, pre, p.t, p.src, p.dst);
#endif
    }
}
#endif

#ifdef RNN_PERSISTENT
// The whole sequence in one dispatch: a workgroup owns four batch rows and
// keeps their h in workgroup memory; invocation u owns unit u (H <= 256).
// p.t = steps, p.src = 1 for the reverse direction. Workgroups never wait
// on each other, only on their own barriers between steps.
var<workgroup> hbuf: array<vec4<f32>, 256>;  // hbuf[k][i] = h_prev[b0 + i, k]

@compute @workgroup_size(256, 1, 1)
fn rnn_persistent(@builtin(local_invocation_index) u: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let h = p.hidden;
    let steps = p.t;
    let reverse = p.src != 0u;
    let b0 = wid.x * 4u;
    let bb = min(vec4<u32>(b0, b0 + 1u, b0 + 2u, b0 + 3u), vec4<u32>(p.batch - 1u));
    let first = select(0u, steps, reverse);
    if u < h {
        let o = first * p.batch * h + u;
        hbuf[u] = vec4<f32>(f32(hseq[o + bb.x * h]), f32(hseq[o + bb.y * h]), f32(hseq[o + bb.z * h]), f32(hseq[o + bb.w * h]));
    }
#ifdef RNN
    let r = vec4<u32>(min(u, h - 1u));
#else
    let r = vec4<u32>(u, h + u, 2u * h + u, min(3u * h + u, gh() - 1u));
#endif
    let bias = select(vec4<f32>(0.0), vec4<f32>(f32(b_hh[min(r.x, gh() - 1u)]), f32(b_hh[min(r.y, gh() - 1u)]), f32(b_hh[min(r.z, gh() - 1u)]), f32(b_hh[min(r.w, gh() - 1u)])), u < h);
    workgroupBarrier();
    for (var s = 0u; s < steps; s++) {
        let t = select(s, steps - 1u - s, reverse);
        let src = select(t, t + 1u, reverse);
        let dst = select(t + 1u, t, reverse);
        var acc = mat4x4<f32>();
        if u < h {
            for (var k = 0u; k < h; k++) {
                let hv = hbuf[k];
                let w4 = vec4<f32>(f32(w_hh_t[k * gh() + r.x]), f32(w_hh_t[k * gh() + r.y]), f32(w_hh_t[k * gh() + r.z]), f32(w_hh_t[k * gh() + r.w]));
                acc = mat4x4<f32>(fma(vec4<f32>(w4.x), hv, acc[0]), fma(vec4<f32>(w4.y), hv, acc[1]),
                                  fma(vec4<f32>(w4.z), hv, acc[2]), fma(vec4<f32>(w4.w), hv, acc[3]));
            }
        }
        workgroupBarrier();
        if u < h {
            var next = vec4<f32>(0.0);
            for (var i = 0u; i < 4u; i++) {
                let b = b0 + i;
                if b >= p.batch { break; }
                let pre = vec4<f32>(acc[0][i], acc[1][i], acc[2][i], acc[3][i]) + bias;
#ifdef RNN
                next[i] = elman_update(u, b, pre.x, t, dst);
#else
                next[i] = gated_update(u, b, pre, t, src, dst);
#endif
            }
            hbuf[u] = next;
        }
        workgroupBarrier();
    }
}
#endif
