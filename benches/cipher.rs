//! Cipher benchmarks.
fn main() {}
