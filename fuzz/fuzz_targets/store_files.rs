//! Fuzz target `store_files`; the logic is in `fuzz/logic/store_files.rs`.
#![no_main]

#[path = "../logic/store_files.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::run(data));
