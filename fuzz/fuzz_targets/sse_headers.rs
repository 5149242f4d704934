//! Fuzz target `sse_headers`; the logic is in `fuzz/logic/sse_headers.rs`.
#![no_main]

#[path = "../logic/sse_headers.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::run(data));
