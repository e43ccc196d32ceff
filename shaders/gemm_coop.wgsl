// GEMM on cooperative matrices (tensor cores): C = act(alpha * op(A) op(B)
// + beta * C + bias) with f16 products and f32 accumulation. M, N, K, Z and
// the layouts as in gemm.wgsl (shared/gemm_io.wgsl); operands are read in
// their storage type and rounded to f16 as they are staged.
//
// `gemm_coop`: a workgroup of 128 invocations (four subgroups of 32) computes
// a 64x64 tile of C, each subgroup a 32x32 quarter as 2x2 accumulators of
// 16x16 (f32). 64x32 slabs of op(A) and 32x64 slabs of op(B) are staged in
// workgroup memory as f16, zero outside the matrices, so any M, N, K works;
// the tile goes back through workgroup memory to gemm_io's epilogue (alpha,
// beta, bias, activation, bounds). Needs the adapter's 16x16x16 f16 x f16 +
// f32 configuration (wgpu's EXPERIMENTAL_COOPERATIVE_MATRIX) and subgroups
// of exactly 32 invocations; the launcher checks both.
enable f16;
enable wgpu_cooperative_matrix;
#import gemm_io

#define KS 32u
var<workgroup> tile_a: array<f16, 64u * KS>;   // [m][k], row stride KS
var<workgroup> tile_b: array<f16, KS * 64u>;   // [k][n], row stride 64
var<workgroup> tile_c: array<f32, 64u * 64u>;  // [m][n], row stride 64

@compute @workgroup_size(128, 1, 1)
fn gemm_coop(
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let z = wid.z;
    let m0 = wid.y * 64u;
    let n0 = wid.x * 64u;
    // This subgroup's quarter of the tile.
    let qm = (sg / 2u) * 32u;
    let qn = (sg % 2u) * 32u;
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    for (var k0 = 0u; k0 < p.k; k0 += KS) {
        // 2048 elements of each slab, 16 per invocation; consecutive
        // invocations take consecutive k (A) or n (B).
        for (var j = 0u; j < 16u; j++) {
            let e = j * 128u + li;
            let ar = e / KS;
            let ak = e % KS;
            tile_a[e] = f16(load_a(z, m0 + ar, k0 + ak));
            let bk = e / 64u;
            let bn = e % 64u;
            tile_b[e] = f16(load_b(z, k0 + bk, n0 + bn));
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KS; kk += 16u) {
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&tile_a[qm * KS + kk], KS);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(&tile_a[(qm + 16u) * KS + kk], KS);
            let b0 = coopLoadT<coop_mat16x16<f16, B>>(&tile_b[kk * 64u + qn], 64u);
            let b1 = coopLoadT<coop_mat16x16<f16, B>>(&tile_b[kk * 64u + qn + 16u], 64u);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
        }
        workgroupBarrier();
    }
    coopStoreT(c00, &tile_c[qm * 64u + qn], 64u);
    coopStoreT(c01, &tile_c[qm * 64u + qn + 16u], 64u);
    coopStoreT(c10, &tile_c[(qm + 16u) * 64u + qn], 64u);
    coopStoreT(c11, &tile_c[(qm + 16u) * 64u + qn + 16u], 64u);
    workgroupBarrier();
    for (var j = 0u; j < 32u; j++) {
        let e = j * 128u + li;
        store_c(z, m0 + e / 64u, n0 + e % 64u, tile_c[e]);
    }
}
