//! Fuzz target `range_header`; the logic is in `fuzz/logic/range_header.rs`.
#![no_main]

#[path = "../logic/range_header.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::run(data));
