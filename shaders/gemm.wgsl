// GEMM: C = act(alpha * op(A) op(B) + beta * C + bias), batched.
// M, N, K = rows of op(A), columns of op(B), inner dimension; Z = batch.
// Layouts, leading dimensions and batch strides: see shared/gemm_io.wgsl.
//
// `gemm` (tiled, for GPUs): an 8x8 workgroup computes a 64x64 tile of C,
//   each invocation an 8x8 register block (four 4x4 accumulators). 64xBK
//   slabs of op(A) and BKx64 slabs of op(B) are staged k-major in workgroup
//   memory, so the inner loop reads four vec4s for 64 FMAs and every operand
//   element is read from global memory once per tile.
// `gemm_naive`: one output per invocation, the baseline the benches compare to.
#import gemm_io

// K depth of a staged slab; 32 keeps both slabs in 16 KiB (WebGPU's default).
#define BK 32u
var<workgroup> tile_a: array<vec4<f32>, BK * 16u>;  // [k][m / 4]: BK x 64 floats
var<workgroup> tile_b: array<vec4<f32>, BK * 16u>;  // [k][n / 4]: BK x 64 floats

@compute @workgroup_size(8, 8, 1)
fn gemm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let z = wid.z;
    let m0 = wid.y * 64u;
    let n0 = wid.x * 64u;
    let t = lid.y * 8u + lid.x;
    var blk = Block8();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // Invocation t stages row t of the op(A) slab and column t of the
        // op(B) slab (consecutive invocations read consecutive addresses of
        // a row-major B).
        for (var j = 0u; j < BK; j++) {
            tile_a[j * 16u + t / 4u][t % 4u] = load_a(z, m0 + t, k0 + j);
            tile_b[j * 16u + t / 4u][t % 4u] = load_b(z, k0 + j, n0 + t);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let ka = kk * 16u + lid.y * 2u;
            let kb = kk * 16u + lid.x * 2u;
            blk = block_update(blk, tile_a[ka], tile_a[ka + 1u], tile_b[kb], tile_b[kb + 1u]);
        }
        workgroupBarrier();
    }
    store_block8(z, m0 + lid.y * 8u, n0 + lid.x * 8u, blk);
}

@compute @workgroup_size(16, 16, 1)
fn gemm_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    let m = gid.y;
    let z = gid.z;
    if m >= p.m || n >= p.n { return; }
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc += load_a(z, m, kk) * load_b(z, kk, n);
    }
    store_c(z, m, n, acc);
}
