//! What the kernels' unit tests share: a block-at-a-time GCM reference
//! with any starting counter, the four paths (seal and open, in place and
//! out of place) checked against it, the test keys, and the check of the
//! round-1 table.

use aes::Aes256;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;

use crate::cipher::length_block;

/// A kernel's `crypt` (keyed, its CPU witness checked by the caller):
/// `(seal, nonce, ctr0, aad, buf, src) -> tag`.
pub(super) type CryptFn<'a> =
    dyn Fn(bool, &[u8; 12], u32, &[u8], &mut [u8], Option<&[u8]>) -> [u8; 16] + 'a;
/// A borrowed [`CryptFn`].
pub(super) type Crypt<'a> = &'a CryptFn<'a>;

/// GCM with the message counter starting at `ctr0`, one block at a time.
pub(super) fn reference(
    key: &[u8; 32],
    nonce: &[u8; 12],
    ctr0: u32,
    aad: &[u8],
    buf: &mut [u8],
) -> [u8; 16] {
    let aes = Aes256::new(key.into());
    let block = |ctr: u32| {
        let mut b = aes::Block::default();
        b[..12].copy_from_slice(nonce);
        b[12..].copy_from_slice(&ctr.to_be_bytes());
        aes.encrypt_block(&mut b);
        b
    };
    for (i, chunk) in buf.chunks_mut(16).enumerate() {
        let ks = block(ctr0.wrapping_add(i as u32));
        chunk.iter_mut().zip(ks.iter()).for_each(|(c, k)| *c ^= k);
    }
    let mut h = aes::Block::default();
    aes.encrypt_block(&mut h);
    let mut ghash = GHash::new(&h);
    ghash.update_padded(aad);
    ghash.update_padded(buf);
    ghash.update(&[length_block(aad.len(), buf.len()).into()]);
    let s = ghash.finalize();
    let mask = block(1);
    core::array::from_fn(|i| s[i] ^ mask[i])
}

/// Seals `msg` in place and into a buffer of garbage, and opens the
/// ciphertext into a buffer of garbage and in place, each checked (bytes
/// and tag) against [`reference`].
pub(super) fn four_paths(
    crypt: Crypt,
    key: &[u8; 32],
    nonce: &[u8; 12],
    ctr0: u32,
    aad: &[u8],
    msg: &[u8],
) {
    let at = format!("key[15] {:#x} ctr0 {ctr0:#x} len {}", key[15], msg.len());
    let mut want = msg.to_vec();
    let want_tag = reference(key, nonce, ctr0, aad, &mut want);
    let mut got = msg.to_vec();
    let tag = crypt(true, nonce, ctr0, aad, &mut got, None);
    assert_eq!((&got, tag), (&want, want_tag), "seal, {at}");
    let mut out = vec![0xa5u8; msg.len()];
    let tag = crypt(true, nonce, ctr0, aad, &mut out, Some(msg));
    assert_eq!((&out, tag), (&want, want_tag), "seal to, {at}");
    let mut back = vec![0x3cu8; msg.len()];
    let tag = crypt(false, nonce, ctr0, aad, &mut back, Some(&want));
    assert_eq!((&back[..], tag), (msg, want_tag), "open to, {at}");
    let tag = crypt(false, nonce, ctr0, aad, &mut got, None);
    assert_eq!((&got[..], tag), (msg, want_tag), "open, {at}");
}

/// Starting counters just before the 2^32 wrap, and every value of the
/// low counter byte (the fast paths' bounds depend on it).
pub(super) fn wrap_and_low_bytes() -> impl Iterator<Item = u32> {
    let wrap = [u32::MAX - 40, u32::MAX - 15, u32::MAX - 1, u32::MAX];
    wrap.into_iter()
        .chain((0..=255u32).map(|b| 0x1234_5600 | b))
}

/// The 2^32-wrap test of a kernel: every counter of
/// [`wrap_and_low_bytes`] with every length of `lens`, all four paths.
pub(super) fn counter_wraps(crypt: Crypt, lens: &[usize]) {
    let key: [u8; 32] = core::array::from_fn(|i| i as u8 * 7 + 1);
    let nonce: [u8; 12] = core::array::from_fn(|i| 0xf0 ^ i as u8);
    for ctr0 in wrap_and_low_bytes() {
        for &len in lens {
            let msg: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            four_paths(crypt, &key, &nonce, ctr0, b"aad", &msg);
        }
    }
}

/// Every low counter byte below an ordinary high part and below the 2^32
/// wrap, with every length of `lens`, all four paths, for `key`.
pub(super) fn every_low_byte(crypt: Crypt, key: &[u8; 32], lens: &[usize]) {
    let nonce: [u8; 12] = core::array::from_fn(|i| 0x0f ^ (i as u8 * 5));
    let high = [0x1234_5600u32, 0xffff_ff00];
    for ctr0 in high
        .into_iter()
        .flat_map(|h| (0..=255u32).map(move |b| h | b))
    {
        for &len in lens {
            let msg: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
            four_paths(crypt, key, &nonce, ctr0, b"ad", &msg);
        }
    }
}

/// Every message of 0 to 256 whole blocks, and each with a partial last
/// block (1 to 15 bytes, cycling), all four paths, from an ordinary
/// starting counter and from one 20 blocks before the 2^32 wrap: every
/// stride count up to 16 strides of the 256-byte kernels (32 of the
/// 128-byte one) with every tail shape.
pub(super) fn every_block_count(crypt: Crypt, key: &[u8; 32]) {
    let nonce: [u8; 12] = core::array::from_fn(|i| 0x5a ^ (i as u8 * 3));
    let msg: Vec<u8> = (0..256 * 16 + 15).map(|i| (i * 7 + 5) as u8).collect();
    for blocks in 0..=256usize {
        let extra = 1 + blocks % 15;
        for len in [16 * blocks, 16 * blocks + extra] {
            for ctr0 in [2, u32::MAX - 19] {
                four_paths(crypt, key, &nonce, ctr0, b"tail", &msg[..len]);
            }
        }
    }
}

/// Two keys, one with a zero last byte (the only key byte the round-1
/// tables depend on).
pub(super) fn test_keys() -> [[u8; 32]; 2] {
    let a: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(29) ^ 0x5c);
    let mut b: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(83) ^ 0xa3);
    b[15] = 0;
    [a, b]
}

/// Checks a round-1 table: for three base blocks with last byte 0 and
/// every `t`, round 1 of the block with last byte `t` (`direct`, whitening
/// included) is round 1 of the base block XOR `first(t)`.
pub(super) fn round1_table(
    key15: u8,
    direct: impl Fn(&[u8; 16]) -> [u8; 16],
    first: impl Fn(u8) -> [u8; 16],
) {
    for seed in [0u8, 0x3d, 0xff] {
        let mut base: [u8; 16] = core::array::from_fn(|i| seed ^ (i as u8 * 17));
        base[15] = 0;
        let r1 = direct(&base);
        for t in 0..=255u8 {
            let mut b = base;
            b[15] = t;
            let f = first(t);
            let via_table: [u8; 16] = core::array::from_fn(|i| r1[i] ^ f[i]);
            assert_eq!(via_table, direct(&b), "key[15] {key15:#x} t {t:#x}");
        }
    }
}
