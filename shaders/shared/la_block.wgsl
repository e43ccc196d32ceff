// 8x8 register blocks for the chunked linear-attention products, held as
// four 4x4 accumulators like gemm_blocked's (no workgroup memory, no
// barriers: on CPU drivers a barrier costs more than the loads it saves, and
// GPUs cache the re-read rows). Column i of c{r}{c} is row 4r + i of the
// block; its components are columns 4c..4c+4.

struct Blk {
    c00: mat4x4<f32>, c01: mat4x4<f32>, c10: mat4x4<f32>, c11: mat4x4<f32>,
}

// Eight values as two vec4s.
struct V8 { lo: vec4<f32>, hi: vec4<f32> }

fn v8_mul(a: V8, b: V8) -> V8 { return V8(a.lo * b.lo, a.hi * b.hi); }
fn v8_exp(a: V8) -> V8 { return V8(exp(a.lo), exp(a.hi)); }
fn v8_sub(a: V8, b: V8) -> V8 { return V8(a.lo - b.lo, a.hi - b.hi); }
fn v8_splat(x: f32) -> V8 { return V8(vec4<f32>(x), vec4<f32>(x)); }
fn v8_min0(a: V8) -> V8 { return V8(min(a.lo, vec4<f32>(0.0)), min(a.hi, vec4<f32>(0.0))); }
fn v8_get(a: V8, j: u32) -> f32 {
    if j < 4u { return a.lo[j]; }
    return a.hi[j - 4u];
}

fn rank1(acc: mat4x4<f32>, a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(
        fma(vec4<f32>(a.x), b, acc[0]), fma(vec4<f32>(a.y), b, acc[1]),
        fma(vec4<f32>(a.z), b, acc[2]), fma(vec4<f32>(a.w), b, acc[3]));
}

// acc += outer(a, b).
fn upd(acc: Blk, a: V8, b: V8) -> Blk {
    return Blk(rank1(acc.c00, a.lo, b.lo), rank1(acc.c01, a.lo, b.hi),
               rank1(acc.c10, a.hi, b.lo), rank1(acc.c11, a.hi, b.hi));
}

fn add_blk(a: Blk, b: Blk) -> Blk {
    return Blk(a.c00 + b.c00, a.c01 + b.c01, a.c10 + b.c10, a.c11 + b.c11);
}

// m ⊙ [e^{min(a_i − b_j, 0)}]: a decay between rows a and columns b (the
// clamp keeps pairs outside the causal mask, which are zero, finite).
fn decay4(m: mat4x4<f32>, a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
    let z = vec4<f32>(0.0);
    return mat4x4<f32>(
        m[0] * exp(min(vec4<f32>(a.x) - b, z)), m[1] * exp(min(vec4<f32>(a.y) - b, z)),
        m[2] * exp(min(vec4<f32>(a.z) - b, z)), m[3] * exp(min(vec4<f32>(a.w) - b, z)));
}

fn decay_blk(m: Blk, a: V8, b: V8) -> Blk {
    return Blk(decay4(m.c00, a.lo, b.lo), decay4(m.c01, a.lo, b.hi),
               decay4(m.c10, a.hi, b.lo), decay4(m.c11, a.hi, b.hi));
}

// m with the entries of column j > row i (block offsets) set to zero.
fn lower4(m: mat4x4<f32>, i0: u32, j0: u32) -> mat4x4<f32> {
    let j = vec4<u32>(j0, j0 + 1u, j0 + 2u, j0 + 3u);
    let z = vec4<f32>(0.0);
    return mat4x4<f32>(
        select(z, m[0], j <= vec4<u32>(i0)), select(z, m[1], j <= vec4<u32>(i0 + 1u)),
        select(z, m[2], j <= vec4<u32>(i0 + 2u)), select(z, m[3], j <= vec4<u32>(i0 + 3u)));
}

fn lower_blk(m: Blk) -> Blk {
    return Blk(lower4(m.c00, 0u, 0u), lower4(m.c01, 0u, 4u), lower4(m.c10, 4u, 0u), lower4(m.c11, 4u, 4u));
}

// Rows scaled: row i times s_i.
fn scale4(m: mat4x4<f32>, s: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(m[0] * s.x, m[1] * s.y, m[2] * s.z, m[3] * s.w);
}

fn scale_rows(m: Blk, s: V8) -> Blk {
    return Blk(scale4(m.c00, s.lo), scale4(m.c01, s.lo), scale4(m.c10, s.hi), scale4(m.c11, s.hi));
}

// Columns scaled: column j times s_j.
fn scale_cols(m: Blk, s: V8) -> Blk {
    return Blk(mat4x4<f32>(m.c00[0] * s.lo, m.c00[1] * s.lo, m.c00[2] * s.lo, m.c00[3] * s.lo),
               mat4x4<f32>(m.c01[0] * s.hi, m.c01[1] * s.hi, m.c01[2] * s.hi, m.c01[3] * s.hi),
               mat4x4<f32>(m.c10[0] * s.lo, m.c10[1] * s.lo, m.c10[2] * s.lo, m.c10[3] * s.lo),
               mat4x4<f32>(m.c11[0] * s.hi, m.c11[1] * s.hi, m.c11[2] * s.hi, m.c11[3] * s.hi));
}

// Elementwise product.
fn mul_blk(a: Blk, b: Blk) -> Blk {
    return Blk(
        mat4x4<f32>(a.c00[0] * b.c00[0], a.c00[1] * b.c00[1], a.c00[2] * b.c00[2], a.c00[3] * b.c00[3]),
        mat4x4<f32>(a.c01[0] * b.c01[0], a.c01[1] * b.c01[1], a.c01[2] * b.c01[2], a.c01[3] * b.c01[3]),
        mat4x4<f32>(a.c10[0] * b.c10[0], a.c10[1] * b.c10[1], a.c10[2] * b.c10[2], a.c10[3] * b.c10[3]),
        mat4x4<f32>(a.c11[0] * b.c11[0], a.c11[1] * b.c11[1], a.c11[2] * b.c11[2], a.c11[3] * b.c11[3]));
}

// Component j of eight vec4s (rows of four columns) as one column of eight.
fn quad_col(r: array<vec4<f32>, 8>, j: u32) -> V8 {
    return V8(vec4<f32>(r[0][j], r[1][j], r[2][j], r[3][j]), vec4<f32>(r[4][j], r[5][j], r[6][j], r[7][j]));
}

// Row i of the block.
fn blk_row(m: Blk, i: u32) -> V8 {
    if i < 4u { return V8(m.c00[i], m.c01[i]); }
    return V8(m.c10[i - 4u], m.c11[i - 4u]);
}

// Row i replaced by r.
fn blk_set_row(m: Blk, i: u32, r: V8) -> Blk {
    var o = m;
    if i < 4u { o.c00[i] = r.lo; o.c01[i] = r.hi; } else { o.c10[i - 4u] = r.lo; o.c11[i - 4u] = r.hi; }
    return o;
}
