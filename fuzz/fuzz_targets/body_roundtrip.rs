//! Fuzz target `body_roundtrip`; the logic is in `fuzz/logic/body_roundtrip.rs`.
#![no_main]

#[path = "../logic/body_roundtrip.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::run(data));
