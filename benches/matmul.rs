//! criterion benches (filled in by the matmul kernels).
fn main() {}
