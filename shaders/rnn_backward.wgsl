// Backward of the fused recurrent steps in rnn.wgsl (same legend: T = time,
// B = batch, H = hidden, G = gates, GH = G·H; cell defines LSTM, GRU, RNN
// with RELU). Two dispatches per step:
// `rnn_step_backward` (pointwise): gate gradients for step t, the carried
//   cell gradient, and GRU's direct dh·z term.
// `rnn_step_dh`: dh_prev += dgates_h W_hh, the recurrent part of the
//   hidden-state gradient, eight batch rows per invocation.
#import activations
#import rnn_params

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
fn rnn_step_dh(@builtin(global_invocation_id) gid: vec3<u32>
#ifdef SUBGROUPS
, @builtin(subgroup_invocation_id) sid: u32
#endif
) {
    let h = p.hidden;
    let k = min(gid.x, h - 1u);
    let b0 = gid.y * 8u;
    let last = vec4<u32>(p.batch - 1u);
    let base = p.t * p.batch * gh();
    let ba = min(vec4<u32>(b0, b0 + 1u, b0 + 2u, b0 + 3u), last) * gh() + base;
    let bc = min(vec4<u32>(b0 + 4u, b0 + 5u, b0 + 6u, b0 + 7u), last) * gh() + base;
    var lo = vec4<f32>(0.0);  // batch rows b0..b0+4
    var hi = vec4<f32>(0.0);  // batch rows b0+4..b0+8
    var r0 = 0u;
#ifdef SUBGROUPS
    // The gate gradients are the same for every lane: lane l loads row
    // r0 + l of the eight batch rows, and each row is shuffled out.
    for (; r0 + 8u <= gh(); r0 += 8u) {
        let rl = r0 + min(sid, 7u);
        let ga = vec4<f32>(dg[ba.x + rl], dg[ba.y + rl], dg[ba.z + rl], dg[ba.w + rl]);
        let gc = vec4<f32>(dg[bc.x + rl], dg[bc.y + rl], dg[bc.z + rl], dg[bc.w + rl]);
        for (var rr = 0u; rr < 8u; rr++) {
            let w = vec4<f32>(w_hh[(r0 + rr) * h + k]);
            lo = fma(w, subgroupShuffle(ga, rr), lo);
            hi = fma(w, subgroupShuffle(gc, rr), hi);
        }
    }
#endif
    for (; r0 < gh(); r0++) {
        let w = vec4<f32>(w_hh[r0 * h + k]);
        lo = fma(w, vec4<f32>(dg[ba.x + r0], dg[ba.y + r0], dg[ba.z + r0], dg[ba.w + r0]), lo);
        hi = fma(w, vec4<f32>(dg[bc.x + r0], dg[bc.y + r0], dg[bc.z + r0], dg[bc.w + r0]), hi);
    }
    if gid.x >= h { return; }
    for (var i = 0u; i < 8u; i++) {
        let b = b0 + i;
        if b >= p.batch { break; }
        dh_out[b * h + k] += select(hi[i % 4u], lo[i % 4u], i < 4u);
    }
}
#endif
