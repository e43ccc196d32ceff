// GEMM without workgroup memory: C = act(alpha * op(A) op(B) + beta * C + bias).
// M, N, K, Z as in gemm.wgsl; layouts in shared/gemm_io.wgsl.
//
// `gemm_blocked`: each invocation computes an 8x8 block of C from global
//   memory (eight op(A) and eight op(B) loads per k feed 64 FMAs held in
//   four 4x4 accumulators). No barriers: this is the fast kernel on CPU
//   drivers such as lavapipe, where a workgroup barrier suspends and resumes
//   every fiber of the workgroup and costs more than the loads it saves.
//   When the block's eight rows are inside C (a condition uniform across the
//   workgroup, so every lane takes the same path and the shuffles see all
//   lanes), loads skip the bounds tests: columns past N are clamped to the
//   last column and their results are never stored.
#import gemm_io

// Unchecked loads at base + offsets (callers keep every index in range).
fn gather_a(base: u32, o: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(f32(a[base + o.x]), f32(a[base + o.y]), f32(a[base + o.z]), f32(a[base + o.w]));
}

fn gather_b(base: u32, o: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(f32(b[base + o.x]), f32(b[base + o.y]), f32(b[base + o.z]), f32(b[base + o.w]));
}

@compute @workgroup_size(8, 1, 1)
fn gemm_blocked(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let z = wid.z;
    let m = wid.x * 8u;
    let n = wid.y * 64u + lid.x * 8u;
    var blk = Block8();
    if m + 8u <= p.m {
        let sa = a_strides();
        let sb = b_strides();
        var ia = z * p.stride_a + m * sa.x;
        var ib = z * p.stride_b;
        let last = p.n - 1u;
        let o0 = vec4<u32>(min(n, last), min(n + 1u, last), min(n + 2u, last), min(n + 3u, last)) * sb.x;
        let o1 = vec4<u32>(min(n + 4u, last), min(n + 5u, last), min(n + 6u, last), min(n + 7u, last)) * sb.x;
        let oa = vec4<u32>(0u, 1u, 2u, 3u) * sa.x;
        var k0 = 0u;
#ifdef SUBGROUPS
        // Lane i loads op(A)[m + r, k0 + i] for the eight rows r: one SIMD
        // load per row for eight steps of k, then each step broadcasts its
        // lane's values instead of every lane loading the same eight values.
        for (; k0 + 8u <= p.k; k0 += 8u) {
            let ik = ia + lid.x * sa.y;
            let r0 = gather_a(ik, oa);
            let r1 = gather_a(ik + 4u * sa.x, oa);
            for (var kk = 0u; kk < 8u; kk++) {
                blk = block_update(blk, subgroupShuffle(r0, kk), subgroupShuffle(r1, kk), gather_b(ib, o0), gather_b(ib, o1));
                ib += sb.y;
            }
            ia += 8u * sa.y;
        }
#endif
        for (; k0 < p.k; k0++) {
            blk = block_update(blk, gather_a(ia, oa), gather_a(ia + 4u * sa.x, oa), gather_b(ib, o0), gather_b(ib, o1));
            ia += sa.y;
            ib += sb.y;
        }
    } else {
        for (var kk = 0u; kk < p.k; kk++) {
            blk = block_update(blk, load_a4(z, m, kk), load_a4(z, m + 4u, kk), load_b4(z, kk, n), load_b4(z, kk, n + 4u));
        }
    }
    store_block8(z, m, n, blk);
}
