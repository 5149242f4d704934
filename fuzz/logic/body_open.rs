//! Logic of the `body_open` fuzz target, shared with the replay test
//! (`tests/fuzz_replay.rs`).
//!
//! Input: key selector (1) || context length (1) || context || body. Opens
//! the bytes as a body through the slice, streaming and range paths under a
//! fixed key; none may panic, and all must agree that it fails (a random
//! body cannot authenticate). The first byte's low bit picks whether the
//! body is first re-sealed validly from the input, so the fuzzer also
//! explores mutations near valid bodies: then every path must succeed.

use objseal::body::{self, ByteRange, DataKey, OpenReader};
use std::hint::black_box;
use std::io::Read;

pub fn run(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let key = DataKey::from_bytes([data[0] | 1; 32]);
    let ctx_len = usize::from(data[1]).min(data.len() - 2);
    let (ctx, rest) = data[2..].split_at(ctx_len);
    let (input, valid) = if data[0] & 1 == 1 {
        (body::seal(&key, ctx, rest).expect("seal"), true)
    } else {
        (rest.to_vec(), false)
    };

    let slice = body::open(&key, ctx, &input);
    let mut streamed = Vec::new();
    let stream = OpenReader::with_batch_chunks(&input[..], &key, ctx, 1)
        .and_then(|mut r| r.read_to_end(&mut streamed).map_err(Into::into));
    let len = body::plaintext_len(input.len() as u64).unwrap_or(0);
    let ranged = body::open_range(
        &key,
        ctx,
        &input,
        ByteRange::Bounded {
            start: len / 3,
            end: len,
        },
    );
    let tail = body::open_range(&key, ctx, &input, ByteRange::Last(u64::from(data[0])));

    if valid {
        let pt = slice.expect("valid body opens");
        assert_eq!(pt, rest);
        stream.expect("valid body streams");
        assert_eq!(streamed, rest);
        if len > 0 {
            assert_eq!(ranged.expect("range"), &rest[(len / 3) as usize..]);
        }
    } else {
        assert!(slice.is_err(), "random bytes authenticated");
        assert!(stream.is_err(), "random bytes streamed");
        assert!(streamed.is_empty() || streamed.len() % body::CHUNK_LEN == 0);
        black_box((ranged.ok(), tail.ok()));
    }
}
