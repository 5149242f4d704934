//! Logic of the `cipher_differential` fuzz target, shared with the corpus
//! replay test (`tests/fuzz_replay.rs`), so every input the fuzzer keeps is
//! also a regression test under plain `cargo test`.
//!
//! Input: key (32) || nonce (12) || aad_len (1) || flip (2) || aad || message.
//! Every backend this CPU runs must seal to the same ciphertext and tag as
//! the `aes-gcm` crate, open it back, and reject the input with one bit
//! flipped (chosen by `flip`) exactly when `aes-gcm` rejects it. The raw
//! message is also opened as if it were ciphertext under an arbitrary tag,
//! and both implementations must agree on the verdict.

use aes_gcm::aead::{AeadInOut, KeyInit};
use objseal::cipher::{Aes256Gcm, Backend};
use std::hint::black_box;

pub fn run(data: &[u8]) {
    if data.len() < 47 {
        return;
    }
    let (key, rest) = data.split_at(32);
    let (nonce, rest) = rest.split_at(12);
    let aad_len = usize::from(rest[0]).min(rest.len() - 3);
    let flip = u16::from_be_bytes([rest[1], rest[2]]);
    let (aad, msg) = rest[3..].split_at(aad_len);
    let key: &[u8; 32] = key.try_into().unwrap();

    let reference = aes_gcm::Aes256Gcm::new(key.into());
    let mut ref_ct = msg.to_vec();
    let ref_tag: [u8; 16] = reference
        .encrypt_inout_detached(nonce.try_into().unwrap(), aad, ref_ct.as_mut_slice().into())
        .unwrap()
        .into();

    // The flipped bit lands in the ciphertext, the tag, the AAD or the nonce.
    let total_bits = (ref_ct.len() + 16 + aad.len() + 12) * 8;
    let bit = usize::from(flip) % total_bits;
    let (mut t_ct, mut t_tag, mut t_aad, mut t_nonce) =
        (ref_ct.clone(), ref_tag, aad.to_vec(), nonce.to_vec());
    let mut b = bit;
    let mask = 1u8 << (b % 8);
    if b < t_ct.len() * 8 {
        t_ct[b / 8] ^= mask;
    } else {
        b -= t_ct.len() * 8;
        if b < 128 {
            t_tag[b / 8] ^= mask;
        } else {
            b -= 128;
            if b < t_aad.len() * 8 {
                t_aad[b / 8] ^= mask;
            } else {
                b -= t_aad.len() * 8;
                t_nonce[b / 8] ^= mask;
            }
        }
    }
    let mut ref_tampered = t_ct.clone();
    let ref_accepts_tampered = reference
        .decrypt_inout_detached(
            t_nonce.as_slice().try_into().unwrap(),
            &t_aad,
            ref_tampered.as_mut_slice().into(),
            &t_tag.into(),
        )
        .is_ok();
    assert!(!ref_accepts_tampered, "reference accepted a one-bit change");

    let mut ref_raw = msg.to_vec();
    let ref_raw_ok = reference
        .decrypt_inout_detached(
            nonce.try_into().unwrap(),
            aad,
            ref_raw.as_mut_slice().into(),
            &ref_tag.into(),
        )
        .is_ok();

    for backend in Backend::available() {
        let gcm = Aes256Gcm::with_backend(key, backend).unwrap();
        let mut buf = msg.to_vec();
        let tag = gcm.seal_in_place(nonce, aad, &mut buf).unwrap();
        assert_eq!(buf, ref_ct, "{backend}: ciphertext differs");
        assert_eq!(tag, ref_tag, "{backend}: tag differs");
        gcm.open_in_place(nonce, aad, &mut buf, &tag).unwrap();
        assert_eq!(buf, msg, "{backend}: round trip");
        let mut out = vec![0xa5u8; msg.len()];
        let tag = gcm.seal_to(nonce, aad, msg, &mut out).unwrap();
        assert_eq!(out, ref_ct, "{backend}: seal_to ciphertext differs");
        assert_eq!(tag, ref_tag, "{backend}: seal_to tag differs");
        let mut back = vec![0x3cu8; msg.len()];
        gcm.open_to(nonce, aad, &out, &tag, &mut back).unwrap();
        assert_eq!(back, msg, "{backend}: open_to round trip");

        let mut tampered = t_ct.clone();
        let r = gcm.open_in_place(&t_nonce, &t_aad, &mut tampered, &t_tag);
        assert!(r.is_err(), "{backend}: accepted a one-bit change");
        assert!(
            tampered.iter().all(|&x| x == 0),
            "{backend}: released unauthenticated bytes"
        );
        let mut out = vec![0x3cu8; t_ct.len()];
        let r = gcm.open_to(&t_nonce, &t_aad, &t_ct, &t_tag, &mut out);
        assert!(r.is_err(), "{backend}: open_to accepted a one-bit change");
        assert!(
            out.iter().all(|&x| x == 0),
            "{backend}: open_to released unauthenticated bytes"
        );

        let mut raw = msg.to_vec();
        let ok = gcm.open_in_place(nonce, aad, &mut raw, &ref_tag).is_ok();
        assert_eq!(ok, ref_raw_ok, "{backend}: verdict on raw input differs");
        if ok {
            assert_eq!(raw, ref_raw);
        }
        let mut raw_to = vec![0x3cu8; msg.len()];
        let ok_to = gcm.open_to(nonce, aad, msg, &ref_tag, &mut raw_to).is_ok();
        assert_eq!(
            ok_to, ref_raw_ok,
            "{backend}: open_to verdict on raw input differs"
        );
        if ok_to {
            assert_eq!(raw_to, ref_raw);
        } else {
            assert!(
                raw_to.iter().all(|&x| x == 0),
                "{backend}: open_to left bytes"
            );
        }
        black_box(&raw);
    }
}
