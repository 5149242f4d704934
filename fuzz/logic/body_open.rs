//! Logic of the `body_open` fuzz target, shared with the replay test
//! (`tests/fuzz_replay.rs`).
//!
//! Input: flags (1) || context length (1) || context || rest. The low bit of
//! the flags picks the mode:
//!
//! - 0: `rest` is opened as a body through the slice, streaming, range and
//!   tail paths under a fixed key; none may panic, and none may release a
//!   byte (random bytes cannot authenticate; an empty range of a body whose
//!   header happens to verify returns nothing).
//! - 1: `rest` is sealed validly, then bits 1–2 of the flags pick a mutation
//!   (none, bit flip, truncation, byte insertion) at an offset taken from the
//!   first 4 bytes of `rest`. The slice and streaming opens must succeed iff
//!   the body is unchanged; a range or tail open of a changed body either
//!   fails or returns exactly the original plaintext of that range (it only
//!   opened chunks the mutation did not touch), and fails whenever the
//!   length changed.

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
    let valid = data[0] & 1 == 1;
    let input = if valid {
        let sealed = body::seal(&key, ctx, rest).expect("seal");
        let off = rest
            .get(..4)
            .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap())) as usize;
        let mut m = sealed.clone();
        let n = m.len();
        match (data[0] >> 1) & 3 {
            0 => {}
            1 => m[off / 8 % n] ^= 1 << (off % 8),
            2 => m.truncate(off % n),
            _ => m.insert(off % (n + 1), data[1]),
        }
        let changed = m != sealed;
        check_valid(&key, ctx, rest, &m, changed, m.len() != sealed.len());
        return;
    } else {
        rest.to_vec()
    };

    let slice = body::open(&key, ctx, &input);
    let mut streamed = Vec::new();
    let stream = OpenReader::with_batch_chunks(&input[..], &key, ctx, 1)
        .and_then(|mut r| r.read_to_end(&mut streamed).map_err(Into::into));
    let len = body::plaintext_len(input.len() as u64).unwrap_or(0);
    let ranged = body::open_range(&key, ctx, &input, len / 3..len);
    let tail = body::open_range(&key, ctx, &input, ByteRange::Last(u64::from(data[0])));
    assert!(slice.is_err(), "random bytes authenticated");
    assert!(stream.is_err(), "random bytes streamed");
    assert!(streamed.is_empty() || streamed.len() % body::CHUNK_LEN == 0);
    // An empty range needs no chunk, so it succeeds on any body whose
    // header commits to the key and context. The fuzzer can build such a
    // header (it sees the expected commitment in the comparison); it still
    // releases nothing.
    assert!(
        ranged.as_ref().map_or(true, Vec::is_empty),
        "random bytes opened as a range"
    );
    assert!(
        tail.as_ref().map_or(true, Vec::is_empty),
        "random bytes opened as a tail"
    );
    black_box(streamed);
}

/// Opens a (possibly mutated) valid body through every path.
fn check_valid(key: &DataKey, ctx: &[u8], pt: &[u8], body: &[u8], changed: bool, resized: bool) {
    let slice = body::open(key, ctx, body);
    assert_eq!(slice.is_ok(), !changed, "slice open of a changed body");
    if let Ok(p) = slice {
        assert_eq!(p, pt);
    }
    let mut streamed = Vec::new();
    let stream = OpenReader::with_batch_chunks(body, key, ctx, 1)
        .and_then(|mut r| r.read_to_end(&mut streamed).map_err(Into::into));
    assert_eq!(stream.is_ok(), !changed, "streamed open of a changed body");
    // Whatever was released is authentic plaintext.
    assert_eq!(streamed, &pt[..streamed.len()]);
    let len = body::plaintext_len(body.len() as u64).unwrap_or(0);
    let start = len / 3;
    for (range, from, relative) in [
        (ByteRange::Bounded { start, end: len }, start, false),
        (ByteRange::Last(5), len.saturating_sub(5), true),
    ] {
        match body::open_range(key, ctx, body, range) {
            Ok(v) => {
                // An empty range releases nothing and needs no chunk. A
                // range relative to the end checks the final chunk, so on
                // a resized body it must fail; an absolute range may open
                // chunks a truncation left whole (authentic bytes, checked
                // below).
                assert!(
                    !resized || !relative || v.is_empty(),
                    "a suffix range of a resized body opened"
                );
                let from = from as usize;
                assert_eq!(v, &pt[from..from + v.len()], "range {range:?}");
                if !changed {
                    assert_eq!(v.len(), pt.len() - from);
                }
            }
            Err(e) => assert!(changed || pt.is_empty(), "range {range:?}: {e}"),
        }
    }
}
