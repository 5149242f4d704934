//! Fuzz target `body_open`; the logic is in `fuzz/logic/body_open.rs`.
#![no_main]

#[path = "../logic/body_open.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::run(data));
