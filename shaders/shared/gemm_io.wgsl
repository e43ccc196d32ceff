// Shared by the GEMM kernels: the parameter struct, the bindings, bounds-
// checked operand loads, the epilogue store and the rank-1 update of a 4x4
// register block. op(A) is (Z, M, K), op(B) is (Z, K, N), C is (Z, M, N).
#import activations
#import storage

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    lda: u32, ldb: u32, ldc: u32, act: u32,
    stride_a: u32, stride_b: u32, stride_c: u32, use_beta: u32,
    alpha: f32, beta: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<S>;        // (Z, M, K) or TRANS_A (Z, K, M)
@group(0) @binding(2) var<storage, read> b: array<S>;        // (Z, K, N) or TRANS_B (Z, N, K)
@group(0) @binding(3) var<storage, read_write> c: array<S>;  // (Z, M, N)
@group(0) @binding(4) var<storage, read> bias: array<S>;     // (N), read with BIAS

// Element strides of op(A) along m and k, and of op(B) along n and k.
fn a_strides() -> vec2<u32> {
#ifdef TRANS_A
    return vec2<u32>(1u, p.lda);
#else
    return vec2<u32>(p.lda, 1u);
#endif
}

fn b_strides() -> vec2<u32> {
#ifdef TRANS_B
    return vec2<u32>(p.ldb, 1u);
#else
    return vec2<u32>(1u, p.ldb);
#endif
}

// op(A)[z, m, kk], zero outside the matrix.
fn load_a(z: u32, m: u32, kk: u32) -> f32 {
    if m >= p.m || kk >= p.k { return 0.0; }
    let s = a_strides();
    return f32(a[z * p.stride_a + m * s.x + kk * s.y]);
}

// op(B)[z, kk, n], zero outside the matrix.
fn load_b(z: u32, kk: u32, n: u32) -> f32 {
    if n >= p.n || kk >= p.k { return 0.0; }
    let s = b_strides();
    return f32(b[z * p.stride_b + n * s.x + kk * s.y]);
}

fn store_c(z: u32, m: u32, n: u32, v: f32) {
    if m >= p.m || n >= p.n { return; }
    let i = z * p.stride_c + m * p.ldc + n;
    var r = p.alpha * v;
    if p.use_beta != 0u { r += p.beta * f32(c[i]); }
#ifdef BIAS
    r += f32(bias[n]);
#endif
    c[i] = S(activate(r, p.act));
}

// acc += outer(av, bv): column i of the block is row m + i of C.
fn rank1(acc: mat4x4<f32>, av: vec4<f32>, bv: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(
        fma(vec4<f32>(av.x), bv, acc[0]), fma(vec4<f32>(av.y), bv, acc[1]),
        fma(vec4<f32>(av.z), bv, acc[2]), fma(vec4<f32>(av.w), bv, acc[3]));
}

// Writes a 4x4 block whose rows start at m and columns at n.
fn store_block(z: u32, m: u32, n: u32, acc: mat4x4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        let row = acc[i];
        store_c(z, m + i, n, row.x);
        store_c(z, m + i, n + 1u, row.y);
        store_c(z, m + i, n + 2u, row.z);
        store_c(z, m + i, n + 3u, row.w);
    }
}

// An 8x8 block of C as four 4x4 accumulators: rows m..m+4 / m+4..m+8 (first
// index) against columns n..n+4 / n+4..n+8 (second index).
struct Block8 {
    c00: mat4x4<f32>, c01: mat4x4<f32>, c10: mat4x4<f32>, c11: mat4x4<f32>,
}

// blk += outer((a0, a1), (b0, b1)): one k step of an 8x8 block.
fn block_update(blk: Block8, a0: vec4<f32>, a1: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>) -> Block8 {
    return Block8(rank1(blk.c00, a0, b0), rank1(blk.c01, a0, b1), rank1(blk.c10, a1, b0), rank1(blk.c11, a1, b1));
}

fn store_block8(z: u32, m: u32, n: u32, blk: Block8) {
    store_block(z, m, n, blk.c00);
    store_block(z, m, n + 4u, blk.c01);
    store_block(z, m + 4u, n, blk.c10);
    store_block(z, m + 4u, n + 4u, blk.c11);
}

// Four elements of op(A) column k (rows m..m+4), zero outside the matrix.
fn load_a4(z: u32, m: u32, kk: u32) -> vec4<f32> {
    return vec4<f32>(load_a(z, m, kk), load_a(z, m + 1u, kk), load_a(z, m + 2u, kk), load_a(z, m + 3u, kk));
}

// Four elements of op(B) row k (columns n..n+4), zero outside the matrix.
fn load_b4(z: u32, kk: u32, n: u32) -> vec4<f32> {
    return vec4<f32>(load_b(z, kk, n), load_b(z, kk, n + 1u), load_b(z, kk, n + 2u), load_b(z, kk, n + 3u));
}
