//! Logic of the `aws_kms_answers` fuzz target, shared with the replay test
//! (`cli/tests/fuzz_replay_aws_kms.rs`): the AWS KMS JSON answers
//! (`objseal::AwsKms`, feature `aws-kms`) parsed as the calls parse them.
//!
//! Input: a kind byte (`% 5`: GenerateDataKey, Decrypt, DescribeKey,
//! Encrypt/ReEncrypt, an error answer; the top bit adds an
//! `x-amzn-ErrorType` header to an error), a 2-byte big-endian HTTP status
//! (for errors), then the body. Nothing may panic and no request is made.

use objseal::AwsKms;

pub fn run(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let status = u16::from_be_bytes([data[1], data[2]]) % 600;
    AwsKms::fuzz_parse_answer(data[0], status, &data[3..]);
}
