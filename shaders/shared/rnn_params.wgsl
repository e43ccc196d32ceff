// Parameters shared by the recurrent kernels (rnn.wgsl, rnn_backward.wgsl):
// step t, the state slots read (src) and written (dst), B, H, and G.
struct Params {
    t: u32, src: u32, dst: u32, batch: u32,
    hidden: u32, gates: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn gh() -> u32 { return p.gates * p.hidden; }
