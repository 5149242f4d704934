//! The portable backend: the `aes` block cipher, the `ctr` keystream and the
//! `ghash` universal hash, composed into GCM here with no `unsafe`.
//!
//! Instead of running CTR over the whole message and then GHASH over the
//! whole message (two passes through memory), it works in strides of
//! [`STRIDE`] bytes: each stride is encrypted and then hashed (or hashed and
//! then decrypted) while it is still in L1 cache.

use aes::Aes256;
use aes::cipher::{BlockCipherEncrypt, InnerIvInit, KeyInit, StreamCipherCore};
use ctr::CtrCore;
use ctr::flavors::Ctr32BE;
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use zeroize::Zeroize;

use super::{NONCE_LEN, TAG_LEN, j0, length_block};

/// Bytes processed by CTR and then GHASH in turn: a multiple of the block
/// size, small enough to stay in L1 cache.
const STRIDE: usize = 4096;

type Block = aes::Block;
type Ctr<'a> = CtrCore<&'a Aes256, Ctr32BE>;

/// A keyed portable AES-256-GCM: the AES key schedule and the GHASH key.
/// Both dependencies zeroize their state on drop (their `zeroize` features
/// are enabled).
pub(crate) struct Key {
    aes: Aes256,
    ghash: GHash,
}

impl Key {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let aes = Aes256::new(key.into());
        let mut h = Block::default();
        aes.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        h.zeroize();
        Self { aes, ghash }
    }

    /// Counter positioned at inc32(J0), and the tag mask E(K, J0).
    fn start(&self, nonce: &[u8; NONCE_LEN]) -> (Ctr<'_>, Block) {
        let mut ctr = Ctr::inner_iv_init(&self.aes, &j0(nonce).into());
        let mut mask = Block::default();
        ctr.write_keystream_block(&mut mask);
        (ctr, mask)
    }

    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let (mut ctr, mask) = self.start(nonce);
        let mut ghash = self.ghash.clone();
        ghash.update_padded(aad);
        for stride in buf.chunks_mut(STRIDE) {
            apply_keystream(&mut ctr, stride);
            ghash.update_padded(stride);
        }
        finish(ghash, mask, aad.len(), buf.len())
    }

    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let (mut ctr, mask) = self.start(nonce);
        let mut ghash = self.ghash.clone();
        ghash.update_padded(aad);
        for stride in buf.chunks_mut(STRIDE) {
            ghash.update_padded(stride);
            apply_keystream(&mut ctr, stride);
        }
        finish(ghash, mask, aad.len(), buf.len())
    }
}

/// XORs the keystream into `data`; a partial final block uses the first
/// bytes of one more keystream block. Only the last stride may be partial.
fn apply_keystream(ctr: &mut Ctr<'_>, data: &mut [u8]) {
    let (blocks, tail) = Block::slice_as_chunks_mut(data);
    ctr.apply_keystream_blocks(blocks);
    if !tail.is_empty() {
        let mut ks = Block::default();
        ctr.write_keystream_block(&mut ks);
        for (d, k) in tail.iter_mut().zip(ks.iter()) {
            *d ^= k;
        }
        ks.zeroize();
    }
}

fn finish(mut ghash: GHash, mut mask: Block, aad_len: usize, msg_len: usize) -> [u8; TAG_LEN] {
    ghash.update(&[length_block(aad_len, msg_len).into()]);
    let s = ghash.finalize();
    let mut tag = [0u8; TAG_LEN];
    for ((t, s), m) in tag.iter_mut().zip(s.iter()).zip(mask.iter()) {
        *t = s ^ m;
    }
    mask.zeroize();
    tag
}
