// GEMM: C = act(alpha * op(A) op(B) + beta * C + bias), batched.
// M, N, K = rows of op(A), columns of op(B), inner dimension; Z = batch.
// Layouts, leading dimensions and batch strides: see shared/gemm_io.wgsl.
//
// `gemm` (tiled, for GPUs): an 8x8 workgroup computes a 64x64 tile of C,
//   each invocation an 8x8 register block (four 4x4 accumulators). 64xBK
//   slabs of op(A) and BKx64 slabs of op(B) are staged k-major in workgroup
//   memory, so the inner loop reads four vec4s for 64 FMAs and every operand
//   element is read from global memory once per tile.
// `gemm_wide` (large GPUs): a 16x16 workgroup computes a 128x128 tile, each
//   invocation an 8x8 block whose rows are 4·ty.. and 64 + 4·ty.. and whose
//   columns are 4·tx.. and 64 + 4·tx.. (vec4 reads of workgroup memory that
//   neighbouring invocations take from neighbouring banks). The k-loop
//   stages 128x8 / 8x128 slabs in two buffers: while one is read, the next
//   slab is loaded into registers and then stored to the other, one barrier
//   per slab. Consecutive invocations load consecutive addresses in each
//   operand's own layout.
// `gemm_naive`: one output per invocation, the baseline the benches compare to.
#import gemm_io

#ifdef GEMM
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
#endif

#ifdef GEMM_WIDE
// Two buffers of a 128x8 op(A) slab and an 8x128 op(B) slab, k-major as
// vec4s of four consecutive rows / columns: 16 KiB in all.
var<workgroup> wide_a: array<vec4<f32>, 2u * 8u * 32u>;  // [buffer][k][m / 4]
var<workgroup> wide_b: array<vec4<f32>, 2u * 8u * 32u>;  // [buffer][k][n / 4]

// Element j (0..4) of invocation t's share of slab k0: its (row or column,
// k) in the slab, taking consecutive addresses in the operand's layout.
fn slab_a(t: u32, j: u32) -> vec2<u32> {
    let e = j * 256u + t;
#ifdef TRANS_A
    return vec2<u32>(e % 128u, e / 128u);
#else
    return vec2<u32>(e / 8u, e % 8u);
#endif
}

fn slab_b(t: u32, j: u32) -> vec2<u32> {
    let e = j * 256u + t;
#ifdef TRANS_B
    return vec2<u32>(e / 8u, e % 8u);
#else
    return vec2<u32>(e % 128u, e / 128u);
#endif
}

@compute @workgroup_size(16, 16, 1)
fn gemm_wide(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let z = wid.z;
    let m0 = wid.y * 128u;
    let n0 = wid.x * 128u;
    let t = lid.y * 16u + lid.x;
    var ra: vec4<f32>;
    var rb: vec4<f32>;
    for (var j = 0u; j < 4u; j++) {
        let ea = slab_a(t, j);
        ra[j] = load_a(z, m0 + ea.x, ea.y);
        let eb = slab_b(t, j);
        rb[j] = load_b(z, eb.y, n0 + eb.x);
    }
    for (var j = 0u; j < 4u; j++) {
        let ea = slab_a(t, j);
        wide_a[ea.y * 32u + ea.x / 4u][ea.x % 4u] = ra[j];
        let eb = slab_b(t, j);
        wide_b[eb.y * 32u + eb.x / 4u][eb.x % 4u] = rb[j];
    }
    workgroupBarrier();
    var blk = Block8();
    let slabs = (p.k + 7u) / 8u;
    for (var s = 0u; s < slabs; s++) {
        let next = s + 1u < slabs;
        if next {
            let k0 = (s + 1u) * 8u;
            for (var j = 0u; j < 4u; j++) {
                let ea = slab_a(t, j);
                ra[j] = load_a(z, m0 + ea.x, k0 + ea.y);
                let eb = slab_b(t, j);
                rb[j] = load_b(z, k0 + eb.y, n0 + eb.x);
            }
        }
        let cur = (s % 2u) * 256u;
        for (var kk = 0u; kk < 8u; kk++) {
            let o = cur + kk * 32u;
            blk = block_update(blk, wide_a[o + lid.y], wide_a[o + 16u + lid.y], wide_b[o + lid.x], wide_b[o + 16u + lid.x]);
        }
        if next {
            let nxt = ((s + 1u) % 2u) * 256u;
            for (var j = 0u; j < 4u; j++) {
                let ea = slab_a(t, j);
                wide_a[nxt + ea.y * 32u + ea.x / 4u][ea.x % 4u] = ra[j];
                let eb = slab_b(t, j);
                wide_b[nxt + eb.y * 32u + eb.x / 4u][eb.x % 4u] = rb[j];
            }
        }
        workgroupBarrier();
    }
    let r = m0 + lid.y * 4u;
    let c = n0 + lid.x * 4u;
    store_block(z, r, c, blk.c00);
    store_block(z, r, c + 64u, blk.c01);
    store_block(z, r + 64u, c, blk.c10);
    store_block(z, r + 64u, c + 64u, blk.c11);
}
#endif

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
