//! Fuzz target `envelope_parse`; the logic is in `fuzz/logic/envelope_parse.rs`.
#![no_main]

#[path = "../logic/envelope_parse.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::run(data));
