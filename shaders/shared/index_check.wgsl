// Out-of-range indices reported to the host instead of passing silently.
// The including shader declares
//   @group(0) @binding(N) var<storage, read_write> index_errors: array<atomic<u32>, 4>;
// (the device's error words, bound by the launcher). The first invocation
// to meet a bad index records (1, op, index, bound); the engine copies the
// words with the next readback or sync and returns them as an error
// (`Error::IndexOutOfRange`), then clears them. Op codes: engine.rs.
fn report_index(op: u32, index: u32, bound: u32) {
    if atomicAdd(&index_errors[0], 1u) == 0u {
        atomicStore(&index_errors[1], op);
        atomicStore(&index_errors[2], index);
        atomicStore(&index_errors[3], bound);
    }
}
