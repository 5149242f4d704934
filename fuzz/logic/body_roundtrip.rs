//! Logic of the `body_roundtrip` fuzz target, shared with the replay test
//! (`tests/fuzz_replay.rs`).
//!
//! Input: length (3, big-endian, scaled to at most ~300 KiB) || range start
//! (3) || range length (3) || batch (1) || pattern. Seals a plaintext of that
//! length (the pattern repeated) through the slice and streaming writers,
//! opens it through the slice, streaming and range paths, and checks each
//! equals the plaintext (or its slice), and that a one-bit flip at an
//! input-chosen position is rejected.

use objseal::body::{self, ByteRange, DataKey, OpenReader, SealWriter};
use std::io::{Read, Write};

fn u24(b: &[u8]) -> u64 {
    (u64::from(b[0]) << 16) | (u64::from(b[1]) << 8) | u64::from(b[2])
}

pub fn run(data: &[u8]) {
    if data.len() < 10 {
        return;
    }
    let len = (u24(&data[0..3]) % (300 * 1024)) as usize;
    let batch = usize::from(data[9] % 8) + 1;
    let pattern = if data.len() > 10 {
        &data[10..]
    } else {
        &[0u8][..]
    };
    let pt: Vec<u8> = pattern.iter().copied().cycle().take(len).collect();
    let key = DataKey::from_bytes([7; 32]);
    let ctx = &data[..3];

    let sealed = body::seal(&key, ctx, &pt).expect("seal");
    assert_eq!(sealed.len() as u64, body::sealed_len(len as u64).unwrap());
    assert_eq!(body::open(&key, ctx, &sealed).expect("open"), pt);

    let mut w = SealWriter::with_batch_chunks(Vec::new(), &key, ctx, batch).expect("writer");
    for piece in pt.chunks(pattern.len().max(1) * 37) {
        w.write_all(piece).expect("write");
    }
    let streamed = w.finish().expect("finish");
    assert_eq!(body::open(&key, ctx, &streamed).expect("open streamed"), pt);
    let mut back = Vec::new();
    OpenReader::with_batch_chunks(&streamed[..], &key, ctx, batch)
        .expect("reader")
        .read_to_end(&mut back)
        .expect("read");
    assert_eq!(back, pt);

    let n = len as u64;
    let start = u24(&data[3..6]) % (n + 2);
    let end = start + u24(&data[6..9]) % 70_000;
    match body::open_range(&key, ctx, &sealed, ByteRange::Bounded { start, end }) {
        Ok(got) => assert_eq!(got, &pt[start as usize..end.min(n) as usize]),
        Err(_) => assert!(
            start > n || (start == n && start != end),
            "range {start}..{end} of {n} refused"
        ),
    }

    let mut bad = sealed;
    let at = (u24(&data[3..6]) as usize) % bad.len();
    bad[at] ^= 1 << (data[9] % 8);
    assert!(
        body::open(&key, ctx, &bad).is_err(),
        "flip at {at} not caught"
    );
}
