//! Fuzz target `keys_open`; the logic is in `fuzz/logic/keys_open.rs`.
#![no_main]

#[path = "../logic/keys_open.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::run(data));
