//! Fuzz target `upstream_records`; the logic is in `fuzz/logic/upstream_records.rs`.
#![no_main]

#[path = "../logic/upstream_records.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::run(data));
