//! Differential tests of every backend this CPU can run (and of the one
//! `OBJSEAL_BACKEND` selects) against the
//! independent `aes-gcm` crate, aimed at the edges of the fused kernels: every
//! message length 0..=512 (all tail shapes around the 8- and 16-block
//! strides), every AAD length 0..=80, buffers at every offset 1..=15 from an
//! allocation, random lengths up to 70 KiB, seal and open, and tamper
//! rejection on a sample.
//!
//! Inputs come from a small xorshift generator with fixed seeds, so every
//! run tests the same cases.

use aes_gcm::aead::{AeadInOut, KeyInit};
use objseal::cipher::{Aes256Gcm, Backend};
use objseal::{CipherError, Error};

/// xorshift64*: deterministic test data, not for secrets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }

    fn vec(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.fill(&mut v);
        v
    }
}

/// The backends under test: all this CPU runs, with the portable one as a
/// second reference.
fn backends() -> Vec<Backend> {
    let b = Backend::available();
    assert!(b.contains(&Backend::Portable));
    eprintln!("backends under test: {b:?}");
    b
}

fn reference(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], msg: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let cipher = aes_gcm::Aes256Gcm::new(key.into());
    let mut buf = msg.to_vec();
    let tag = cipher
        .encrypt_inout_detached(nonce.into(), aad, buf.as_mut_slice().into())
        .expect("reference seal");
    (buf, tag.into())
}

/// Seals and opens `msg` with `gcm` in a buffer `offset` bytes into a larger
/// allocation, checks both against the reference, and that the bytes around
/// the buffer are untouched.
#[allow(clippy::too_many_arguments)]
fn check_one(
    gcm: &Aes256Gcm,
    nonce: &[u8; 12],
    aad: &[u8],
    msg: &[u8],
    ct: &[u8],
    tag: &[u8; 16],
    offset: usize,
    ctx: &str,
) {
    let mut space = vec![0xa5u8; msg.len() + 32];
    let buf = &mut space[offset..offset + msg.len()];
    buf.copy_from_slice(msg);
    let ours = gcm.seal_in_place(nonce, aad, buf).expect("seal");
    assert!(buf == ct, "{ctx}: ciphertext differs");
    assert_eq!(&ours, tag, "{ctx}: tag differs");
    gcm.open_in_place(nonce, aad, buf, tag).expect("open");
    assert!(buf == msg, "{ctx}: plaintext differs");
    let outside = space[..offset].iter().chain(&space[offset + msg.len()..]);
    assert!(
        outside.into_iter().all(|&b| b == 0xa5),
        "{ctx}: wrote outside the buffer"
    );
    // Out of place (`seal_to`), from `buf` into another buffer at another
    // alignment, filled with garbage first.
    let to = (offset * 7 + 3) % 16;
    let mut other = vec![0x5au8; msg.len() + 32];
    let out = &mut other[to..to + msg.len()];
    let input = &space[offset..offset + msg.len()];
    let ours = gcm.seal_to(nonce, aad, input, out).expect("seal_to");
    assert!(out == ct, "{ctx}: seal_to ciphertext differs");
    assert_eq!(&ours, tag, "{ctx}: seal_to tag differs");
    assert!(input == msg, "{ctx}: seal_to changed its input");
    let outside = other[..to].iter().chain(&other[to + msg.len()..]);
    assert!(
        outside.into_iter().all(|&b| b == 0x5a),
        "{ctx}: seal_to wrote outside the buffer"
    );
    // Out-of-place open of that ciphertext, into garbage; then of a
    // tampered copy, which must leave zeros.
    let mut back = vec![0x3cu8; msg.len()];
    gcm.open_to(nonce, aad, ct, tag, &mut back)
        .expect("open_to");
    assert!(back == msg, "{ctx}: open_to plaintext differs");
    if !msg.is_empty() {
        let mut bad = ct.to_vec();
        bad[msg.len() / 2] ^= 0x10;
        let e = gcm.open_to(nonce, aad, &bad, tag, &mut back);
        assert!(
            matches!(e, Err(Error::Cipher(CipherError::TagMismatch))),
            "{ctx}: open_to of a tampered ciphertext: {e:?}"
        );
        assert!(
            back.iter().all(|&b| b == 0),
            "{ctx}: open_to left plaintext"
        );
    }
    let e = gcm.open_to(nonce, aad, ct, tag, &mut vec![0u8; msg.len() + 1]);
    assert!(
        matches!(
            e,
            Err(Error::Cipher(CipherError::OutputLengthMismatch { .. }))
        ),
        "{ctx}: open_to into a buffer of another length: {e:?}"
    );
    other.fill(0x5a);
    let short = gcm.seal_to(
        nonce,
        aad,
        input,
        &mut other[..msg.len() / 2 + usize::from(msg.is_empty())],
    );
    assert!(
        matches!(
            short,
            Err(Error::Cipher(CipherError::OutputLengthMismatch { .. }))
        ),
        "{ctx}: seal_to into a buffer of another length: {short:?}"
    );
    let out = &mut other[to..to + msg.len()];
    let bad_nonce = gcm.seal_to(&nonce[..11], aad, input, out);
    assert!(
        matches!(
            bad_nonce,
            Err(Error::Cipher(CipherError::InvalidNonceLength { got: 11 }))
        ),
        "{ctx}: seal_to with an 11-byte nonce: {bad_nonce:?}"
    );
    assert!(
        other.iter().all(|&b| b == 0x5a),
        "{ctx}: a failed seal_to wrote to its output"
    );
}

fn rejects(gcm: &Aes256Gcm, nonce: &[u8; 12], aad: &[u8], ct: &[u8], tag: &[u8; 16]) -> bool {
    let mut buf = ct.to_vec();
    match gcm.open_in_place(nonce, aad, &mut buf, tag) {
        Err(Error::Cipher(CipherError::TagMismatch)) => buf.iter().all(|&b| b == 0),
        _ => false,
    }
}

#[test]
fn every_length_0_to_512() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let key = rng.bytes::<32>();
    let nonce = rng.bytes::<12>();
    let aad = rng.vec(13);
    let gcms: Vec<_> = backends()
        .into_iter()
        .map(|b| Aes256Gcm::with_backend(&key, b).unwrap())
        .collect();
    for len in 0..=512 {
        let msg = rng.vec(len);
        let (ct, tag) = reference(&key, &nonce, &aad, &msg);
        for gcm in &gcms {
            let offset = len % 16;
            check_one(
                gcm,
                &nonce,
                &aad,
                &msg,
                &ct,
                &tag,
                offset,
                &format!("{gcm:?} len {len}"),
            );
        }
    }
}

#[test]
fn every_aad_length_0_to_80() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let key = rng.bytes::<32>();
    let gcms: Vec<_> = backends()
        .into_iter()
        .map(|b| Aes256Gcm::with_backend(&key, b).unwrap())
        .collect();
    for aad_len in 0..=80 {
        for msg_len in [0, 1, 16, 100, 255, 256, 300, 1000] {
            let nonce = rng.bytes::<12>();
            let aad = rng.vec(aad_len);
            let msg = rng.vec(msg_len);
            let (ct, tag) = reference(&key, &nonce, &aad, &msg);
            for gcm in &gcms {
                let ctx = format!("{gcm:?} aad {aad_len} msg {msg_len}");
                check_one(gcm, &nonce, &aad, &msg, &ct, &tag, 0, &ctx);
            }
        }
    }
    // Long AAD too: several strides of it, and not a multiple of one.
    for aad_len in [255, 256, 257, 1000, 4096 + 17] {
        let nonce = rng.bytes::<12>();
        let aad = rng.vec(aad_len);
        let msg = rng.vec(333);
        let (ct, tag) = reference(&key, &nonce, &aad, &msg);
        for gcm in &gcms {
            check_one(
                gcm,
                &nonce,
                &aad,
                &msg,
                &ct,
                &tag,
                3,
                &format!("{gcm:?} aad {aad_len}"),
            );
        }
    }
}

#[test]
fn unaligned_buffers_every_offset() {
    let mut rng = Rng(0x5151_2626_3737_4848);
    let key = rng.bytes::<32>();
    let gcms: Vec<_> = backends()
        .into_iter()
        .map(|b| Aes256Gcm::with_backend(&key, b).unwrap())
        .collect();
    for offset in 1..=15 {
        for len in [1, 15, 16, 17, 64, 255, 256, 257, 1024 + 7, 4096] {
            let nonce = rng.bytes::<12>();
            let aad = rng.vec(offset);
            let msg = rng.vec(len);
            let (ct, tag) = reference(&key, &nonce, &aad, &msg);
            for gcm in &gcms {
                let ctx = format!("{gcm:?} offset {offset} len {len}");
                check_one(gcm, &nonce, &aad, &msg, &ct, &tag, offset, &ctx);
            }
        }
    }
}

#[test]
fn random_lengths_up_to_70_kib_and_tamper() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for round in 0..24 {
        let key = rng.bytes::<32>();
        let nonce = rng.bytes::<12>();
        let aad_len = rng.below(81);
        let aad = rng.vec(aad_len);
        let len = if round < 4 {
            [16 * 1024, 64 * 1024, 70 * 1024, 70 * 1024 - 1][round]
        } else {
            rng.below(70 * 1024 + 1)
        };
        let msg = rng.vec(len);
        let (ct, tag) = reference(&key, &nonce, &aad, &msg);
        for backend in backends() {
            let gcm = Aes256Gcm::with_backend(&key, backend).unwrap();
            let ctx = format!("{backend} len {len}");
            check_one(&gcm, &nonce, &aad, &msg, &ct, &tag, rng.below(16), &ctx);

            // Flip one bit: in the ciphertext (start, middle, end), the
            // tag, the AAD and the nonce.
            if !ct.is_empty() {
                for i in [0, rng.below(ct.len()), ct.len() - 1] {
                    let mut bad = ct.clone();
                    bad[i] ^= 1 << rng.below(8);
                    assert!(
                        rejects(&gcm, &nonce, &aad, &bad, &tag),
                        "{ctx}: ct flip at {i}"
                    );
                }
            }
            let mut bad_tag = tag;
            bad_tag[rng.below(16)] ^= 1 << rng.below(8);
            assert!(
                rejects(&gcm, &nonce, &aad, &ct, &bad_tag),
                "{ctx}: tag flip"
            );
            if !aad.is_empty() {
                let mut bad = aad.clone();
                bad[rng.below(aad.len())] ^= 1 << rng.below(8);
                assert!(rejects(&gcm, &nonce, &bad, &ct, &tag), "{ctx}: aad flip");
            }
            let mut bad_nonce = nonce;
            bad_nonce[rng.below(12)] ^= 1 << rng.below(8);
            assert!(
                rejects(&gcm, &bad_nonce, &aad, &ct, &tag),
                "{ctx}: nonce flip"
            );
        }
    }
}

#[test]
fn fused_backends_are_available_where_the_cpu_has_them() {
    let report = objseal::cpu_report();
    let has = |name: &str| report.features.iter().any(|(n, on)| *n == name && *on);
    if has("aes") && has("pclmulqdq") && has("ssse3") && has("sse4.1") {
        assert!(Backend::AesNiClmul.is_available(), "{report}");
    }
    if has("aes") && has("pclmulqdq") && has("avx2") && has("vaes") && has("vpclmulqdq") {
        assert!(Backend::VaesClmulAvx2.is_available(), "{report}");
        if has("avx512f") && has("avx512bw") && has("avx512vl") {
            assert!(Backend::VaesClmulAvx512.is_available(), "{report}");
        }
    }
    // And the other way: a backend is never available without its features.
    if Backend::VaesClmulAvx512.is_available() {
        for f in ["avx512f", "avx512bw", "avx512vl", "vaes", "vpclmulqdq"] {
            assert!(has(f), "{f}: {report}");
        }
    }
}

/// With `OBJSEAL_BACKEND` set (e.g. `OBJSEAL_BACKEND=vaes-clmul-avx512
/// cargo test --test cipher_kernels`), `Aes256Gcm::new` keys that backend,
/// and it agrees with the reference on every length 0..=1100 and on
/// 64 KiB + 7; unset, the same for the backend a new key gets.
#[test]
fn the_backend_the_environment_selects() {
    let mut rng = Rng(0x1357_9bdf_2468_ace0);
    let key = rng.bytes::<32>();
    let gcm = Aes256Gcm::new(&key).expect("OBJSEAL_BACKEND names a backend this CPU runs");
    let forced = std::env::var(objseal::cipher::BACKEND_ENV).unwrap_or_default();
    if !forced.trim().is_empty() && forced.trim() != "auto" {
        assert_eq!(gcm.backend().name(), forced.trim());
    }
    for len in (0..=1100).chain([64 * 1024 + 7]) {
        let nonce = rng.bytes::<12>();
        let aad = rng.vec(len % 37);
        let msg = rng.vec(len);
        let (ct, tag) = reference(&key, &nonce, &aad, &msg);
        let ctx = format!("{gcm:?} len {len}");
        check_one(&gcm, &nonce, &aad, &msg, &ct, &tag, len % 16, &ctx);
    }
}
