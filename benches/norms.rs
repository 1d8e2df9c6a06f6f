//! criterion benches (filled in by the norms kernels).
fn main() {}
