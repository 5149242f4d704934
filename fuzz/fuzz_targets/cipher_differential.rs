//! Differential fuzzing of `Aes256Gcm` (every backend) against `aes-gcm`.
#![no_main]

#[path = "../logic/cipher_differential.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::run(data));
