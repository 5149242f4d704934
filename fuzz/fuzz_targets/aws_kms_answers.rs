//! Fuzz target `aws_kms_answers`; the logic is in `fuzz/logic/aws_kms_answers.rs`.
#![no_main]

#[path = "../logic/aws_kms_answers.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::run(data));
