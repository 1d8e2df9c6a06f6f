//! criterion benches (filled in by the attention kernels).
fn main() {}
