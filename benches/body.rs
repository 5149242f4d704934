//! Body benchmarks (placeholder until the body layer lands).
fn main() {}
