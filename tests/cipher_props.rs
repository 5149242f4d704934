//! Differential and tamper properties of `Aes256Gcm`, for every backend this
//! CPU can run: equal to the independent `aes-gcm` crate on random lengths up
//! to 70 KiB with random AAD, and every single-bit flip of ciphertext, tag,
//! AAD or nonce is rejected with the buffer zeroed.

use aes_gcm::aead::{AeadInOut, KeyInit};
use objseal::cipher::{Aes256Gcm, Backend};
use objseal::{CipherError, Error};
use proptest::prelude::*;

fn reference_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], msg: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let cipher = aes_gcm::Aes256Gcm::new(key.into());
    let mut buf = msg.to_vec();
    let tag = cipher
        .encrypt_inout_detached(nonce.into(), aad, buf.as_mut_slice().into())
        .unwrap();
    (buf, tag.into())
}

fn rejected(gcm: &Aes256Gcm, nonce: &[u8], aad: &[u8], ct: &[u8], tag: &[u8]) -> bool {
    let mut buf = ct.to_vec();
    match gcm.open_in_place(nonce, aad, &mut buf, tag) {
        Err(Error::Cipher(CipherError::TagMismatch)) => buf.iter().all(|&b| b == 0),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_backend_equals_aes_gcm(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 12]>(),
        aad in proptest::collection::vec(any::<u8>(), 0..200),
        msg in proptest::collection::vec(any::<u8>(), 0..70 * 1024),
    ) {
        let (ct, tag) = reference_seal(&key, &nonce, &aad, &msg);
        for backend in Backend::available() {
            let gcm = Aes256Gcm::with_backend(&key, backend).unwrap();
            let mut buf = msg.clone();
            let ours = gcm.seal_in_place(&nonce, &aad, &mut buf).unwrap();
            prop_assert_eq!(&buf, &ct, "{} ciphertext, len {}", backend, msg.len());
            prop_assert_eq!(ours, tag, "{} tag", backend);
            gcm.open_in_place(&nonce, &aad, &mut buf, &tag).unwrap();
            prop_assert_eq!(&buf, &msg, "{} plaintext", backend);

            // A sample of single-bit flips anywhere in a long ciphertext.
            if !ct.is_empty() {
                for i in [0, ct.len() / 3, ct.len() / 2, ct.len() - 1] {
                    let mut bad = ct.clone();
                    bad[i] ^= 1 << (i % 8);
                    prop_assert!(rejected(&gcm, &nonce, &aad, &bad, &tag), "{} flip at {}", backend, i);
                }
            }
        }
    }
}

/// Every single-bit flip of ciphertext, tag, AAD and nonce, exhaustively, for
/// messages short enough to flip every bit.
#[test]
fn every_single_bit_flip_is_rejected() {
    let key = [0x42u8; 32];
    let nonce = [0x24u8; 12];
    let mut checked = 0usize;
    for backend in Backend::available() {
        let gcm = Aes256Gcm::with_backend(&key, backend).unwrap();
        for (len, aad_len) in [
            (0usize, 0usize),
            (1, 0),
            (0, 13),
            (17, 5),
            (64, 20),
            (100, 33),
        ] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let aad: Vec<u8> = (0..aad_len).map(|i| (i * 5 + 1) as u8).collect();
            let mut ct = msg.clone();
            let tag = gcm.seal_in_place(&nonce, &aad, &mut ct).unwrap();
            for bit in 0..ct.len() * 8 {
                let mut bad = ct.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    rejected(&gcm, &nonce, &aad, &bad, &tag),
                    "{backend} ct bit {bit} len {len}"
                );
                checked += 1;
            }
            for bit in 0..128 {
                let mut bad = tag;
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    rejected(&gcm, &nonce, &aad, &ct, &bad),
                    "{backend} tag bit {bit}"
                );
                checked += 1;
            }
            for bit in 0..aad.len() * 8 {
                let mut bad = aad.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    rejected(&gcm, &nonce, &bad, &ct, &tag),
                    "{backend} aad bit {bit}"
                );
                checked += 1;
            }
            for bit in 0..96 {
                let mut bad = nonce;
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    rejected(&gcm, &bad, &aad, &ct, &tag),
                    "{backend} nonce bit {bit}"
                );
                checked += 1;
            }
            // Appending or dropping a byte of AAD is rejected too.
            let mut longer = aad.clone();
            longer.push(0);
            assert!(rejected(&gcm, &nonce, &longer, &ct, &tag));
            // The untampered input still opens.
            let mut buf = ct.clone();
            gcm.open_in_place(&nonce, &aad, &mut buf, &tag).unwrap();
            assert_eq!(buf, msg);
        }
    }
    assert!(checked > 3000, "{checked} flips checked");
}

#[test]
fn input_errors_are_typed_and_leave_buffer_alone() {
    for backend in Backend::available() {
        let gcm = Aes256Gcm::with_backend(&[1u8; 32], backend).unwrap();
        let mut buf = vec![9u8; 40];
        for n in [0usize, 8, 11, 13, 16, 60] {
            let e = gcm.seal_in_place(&vec![0u8; n], b"", &mut buf).unwrap_err();
            assert!(
                matches!(e, Error::Cipher(CipherError::InvalidNonceLength { got }) if got == n)
            );
        }
        for t in [0usize, 4, 12, 15, 17, 32] {
            let e = gcm
                .open_in_place(&[0u8; 12], b"", &mut buf, &vec![0u8; t])
                .unwrap_err();
            assert!(matches!(e, Error::Cipher(CipherError::InvalidTagLength { got }) if got == t));
        }
        assert_eq!(buf, vec![9u8; 40]);
        let e = Aes256Gcm::from_slice(&[0u8; 31]).unwrap_err();
        assert!(matches!(
            e,
            Error::Cipher(CipherError::InvalidKeyLength { got: 31 })
        ));
        let msg = e.to_string();
        assert!(msg.contains("32-byte"), "{msg}");
    }
}

#[test]
fn debug_prints_no_key_material() {
    let gcm = Aes256Gcm::with_backend(&[0xAB; 32], Backend::Portable).unwrap();
    let s = format!("{gcm:?}");
    assert!(s.to_lowercase().contains("portable"), "{s}");
    assert!(
        !s.to_lowercase().contains("ab, ab") && !s.contains("171"),
        "{s}"
    );
}
