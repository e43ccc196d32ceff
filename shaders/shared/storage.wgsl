// The element type of the tensors a kernel reads and writes: f32, or f16
// with F16 (the adapter's SHADER_F16). Arithmetic stays f32: values widen
// as they are loaded (`f32(x[i])`) and round as they are stored (`S(v)`).
#ifdef F16
enable f16;
alias S = f16;
#else
alias S = f32;
#endif
