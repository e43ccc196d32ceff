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

@compute @workgroup_size(8, 1, 1)
fn gemm_blocked(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let z = wid.z;
    let m = wid.x * 8u;
    let n = wid.y * 64u + lid.x * 8u;
    var c00 = mat4x4<f32>();
    var c01 = mat4x4<f32>();
    var c10 = mat4x4<f32>();
    var c11 = mat4x4<f32>();
    if m + 8u <= p.m {
        let sa = a_strides();
        let sb = b_strides();
        var ia = z * p.stride_a + m * sa.x;
        var ib = z * p.stride_b;
        let last = p.n - 1u;
        let o0 = vec4<u32>(min(n, last), min(n + 1u, last), min(n + 2u, last), min(n + 3u, last)) * sb.x;
        let o1 = vec4<u32>(min(n + 4u, last), min(n + 5u, last), min(n + 6u, last), min(n + 7u, last)) * sb.x;
        var k0 = 0u;
#ifdef SUBGROUPS
        // Lane i loads op(A)[m + r, k0 + i] for the eight rows r: one SIMD
        // load per row for eight steps of k, then each step broadcasts its
        // lane's values instead of every lane loading the same eight values.
        for (; k0 + 8u <= p.k; k0 += 8u) {
            let ik = ia + lid.x * sa.y;
            let r0 = vec4<f32>(a[ik], a[ik + sa.x], a[ik + 2u * sa.x], a[ik + 3u * sa.x]);
            let r1 = vec4<f32>(a[ik + 4u * sa.x], a[ik + 5u * sa.x], a[ik + 6u * sa.x], a[ik + 7u * sa.x]);
            for (var kk = 0u; kk < 8u; kk++) {
                let a0 = subgroupShuffle(r0, kk);
                let a1 = subgroupShuffle(r1, kk);
                let b0 = vec4<f32>(b[ib + o0.x], b[ib + o0.y], b[ib + o0.z], b[ib + o0.w]);
                let b1 = vec4<f32>(b[ib + o1.x], b[ib + o1.y], b[ib + o1.z], b[ib + o1.w]);
                c00 = rank1(c00, a0, b0);
                c01 = rank1(c01, a0, b1);
                c10 = rank1(c10, a1, b0);
                c11 = rank1(c11, a1, b1);
                ib += sb.y;
            }
            ia += 8u * sa.y;
        }
#endif
        for (; k0 < p.k; k0++) {
            let a0 = vec4<f32>(a[ia], a[ia + sa.x], a[ia + 2u * sa.x], a[ia + 3u * sa.x]);
            let a1 = vec4<f32>(a[ia + 4u * sa.x], a[ia + 5u * sa.x], a[ia + 6u * sa.x], a[ia + 7u * sa.x]);
            let b0 = vec4<f32>(b[ib + o0.x], b[ib + o0.y], b[ib + o0.z], b[ib + o0.w]);
            let b1 = vec4<f32>(b[ib + o1.x], b[ib + o1.y], b[ib + o1.z], b[ib + o1.w]);
            c00 = rank1(c00, a0, b0);
            c01 = rank1(c01, a0, b1);
            c10 = rank1(c10, a1, b0);
            c11 = rank1(c11, a1, b1);
            ia += sa.y;
            ib += sb.y;
        }
    } else {
        for (var kk = 0u; kk < p.k; kk++) {
            let a0 = vec4<f32>(load_a(z, m, kk), load_a(z, m + 1u, kk), load_a(z, m + 2u, kk), load_a(z, m + 3u, kk));
            let a1 = vec4<f32>(load_a(z, m + 4u, kk), load_a(z, m + 5u, kk), load_a(z, m + 6u, kk), load_a(z, m + 7u, kk));
            let b0 = vec4<f32>(load_b(z, kk, n), load_b(z, kk, n + 1u), load_b(z, kk, n + 2u), load_b(z, kk, n + 3u));
            let b1 = vec4<f32>(load_b(z, kk, n + 4u), load_b(z, kk, n + 5u), load_b(z, kk, n + 6u), load_b(z, kk, n + 7u));
            c00 = rank1(c00, a0, b0);
            c01 = rank1(c01, a0, b1);
            c10 = rank1(c10, a1, b0);
            c11 = rank1(c11, a1, b1);
        }
    }
    store_block(z, m, n, c00);
    store_block(z, m, n + 4u, c01);
    store_block(z, m + 4u, n, c10);
    store_block(z, m + 4u, n + 4u, c11);
}
