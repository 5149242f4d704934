//! AES-256-GCM on 256-bit registers with VAES and VPCLMULQDQ (AVX2 only, no
//! AVX-512, so it also runs on Zen 3).
//!
//! The message is processed in strides of 16 blocks (8 registers of 2
//! blocks). In each stride the 14 AES rounds of 16 counter blocks are
//! interleaved with the GHASH of 16 other blocks: the ciphertext written
//! two strides earlier when sealing (it is hashed after it is written), the
//! current stride's ciphertext when opening (hashed before it is
//! overwritten). Round 1 comes from a per-key table of what the counter's
//! low byte contributes to it (see [`first_round`]). Each
//! block is multiplied by its own power of H (`K_16 … K_1`, see
//! [`super::key_schedule`]) with four carry-less multiplies (low, high and
//! both cross products: no shuffle besides the byte reversal, which LLVM
//! could otherwise merge into costlier shuffle sequences), the 16 products
//! are summed unreduced and reduced once per stride. Counters are 32-bit and wrap
//! (inc32 of SP 800-38D) because they are added with 32-bit lanes.
//!
//! Nothing branches on or indexes memory by secret data (the round-1
//! table is indexed by the counter, which is public).
//!
//! The 256-bit VAES/VPCLMULQDQ intrinsics and target features are stable
//! since Rust 1.89, hence the crate's `rust-version`.

use core::arch::x86_64::*;

use zeroize::Zeroize;

use super::VaesClmulAvx2;
use super::key_schedule::{self as ks, ROUND_KEYS};
use super::prefix;
use crate::cipher::{NONCE_LEN, TAG_LEN, length_block};

/// Blocks per stride.
const BLOCKS: usize = 16;
/// Bytes per stride.
const STRIDE: usize = 16 * BLOCKS;
/// Registers per stride.
const VECS: usize = BLOCKS / 2;
/// When sealing, the stride hashed in each iteration is the one written
/// `LAG` iterations earlier, so that the hashing loads do not wait on the
/// stores of the previous iteration's last round.
const LAG: usize = 2;
/// Values of the counter's low byte: the round-1 table's length.
const LOW_BYTES: usize = 256;

/// A keyed VAES kernel: round keys and hash-key powers, zeroized on drop.
pub(crate) struct Key {
    /// Proof that the CPU has the target features of every function here.
    cpu: VaesClmulAvx2,
    /// Round keys, for one block.
    rk: [[u8; 16]; ROUND_KEYS],
    /// Round keys, each repeated in both 128-bit lanes.
    rk2: [[u8; 32]; ROUND_KEYS],
    /// `pows[i] = K_(16-i)` for i < 16, and `pows[16]` zero, so a block that
    /// is j-th of n (from 0) takes `pows[16 - n + j]`, and a 32-byte load at
    /// index `16 - n + 2m` gives the powers of the m-th register's two blocks.
    pows: [[u8; 16]; BLOCKS + 1],
    /// `first[t]`: what a low counter byte of `t` adds to the first AES
    /// round of a counter block whose low byte is 0 (see [`first_round`]);
    /// a 32-byte load at `t` gives the entries of two consecutive blocks.
    /// Indexed only by the counter, which is public. Its entries depend on
    /// one key byte (`rk0[15]`), so it is wiped when dropped. It costs 256
    /// `aesenc` and 4 KiB per key (setting up, using once and dropping a
    /// key went from about 0.47 to 0.69 µs), so it is built only by the
    /// first message of at least [`ks::ROUND1_FROM`] bytes
    /// ([`build_round1`]).
    first: ks::LazyRound1<LOW_BYTES>,
}

impl Drop for Key {
    fn drop(&mut self) {
        ks::wipe_slice(self.rk.as_flattened_mut());
        ks::wipe_slice(self.rk2.as_flattened_mut());
        ks::wipe_slice(self.pows.as_flattened_mut());
    }
}

impl Key {
    pub(crate) fn new(key: &[u8; 32], cpu: VaesClmulAvx2) -> Box<Self> {
        let mut k = Box::new(Key {
            cpu,
            rk: [[0; 16]; ROUND_KEYS],
            rk2: [[0; 32]; ROUND_KEYS],
            pows: [[0; 16]; BLOCKS + 1],
            first: ks::LazyRound1::new(),
        });
        // SAFETY: `cpu` is a `VaesClmulAvx2` witness, which only `detect()`
        // creates after checking every feature `init` is compiled for.
        unsafe { init(&mut k, key) };
        k
    }

    /// Seals `buf` in place, or, with `src`, seals `src` into `buf` in one
    /// pass (each stride read from `src`, written to `buf`). Equal lengths
    /// are the caller's contract; were they to differ, only the common
    /// prefix is sealed, from `src` (never `buf`'s old bytes).
    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        src: Option<&[u8]>,
    ) -> [u8; TAG_LEN] {
        let (buf, src) = prefix(buf, src);
        let _cpu: VaesClmulAvx2 = self.cpu;
        // SAFETY: `_cpu` is a `VaesClmulAvx2` witness (see `new`).
        unsafe { crypt::<true>(self, nonce, 2, aad, buf, src) }
    }

    /// Decrypts `buf` in place, or `src` into `buf` (as [`Key::seal`]);
    /// returns the expected tag, computed over the ciphertext (the caller
    /// compares it and wipes `buf` on a mismatch).
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        src: Option<&[u8]>,
    ) -> [u8; TAG_LEN] {
        let (buf, src) = prefix(buf, src);
        let _cpu: VaesClmulAvx2 = self.cpu;
        // SAFETY: `_cpu` is a `VaesClmulAvx2` witness (see `new`).
        unsafe { crypt::<false>(self, nonce, 2, aad, buf, src) }
    }
}

/// 32 bytes of a table of 16-byte entries, from entry `i`.
#[inline]
fn pair<const N: usize>(t: &[[u8; 16]; N], i: usize) -> &[u8; 32] {
    t.as_flattened()[16 * i..16 * i + 32]
        .try_into()
        .expect("32 bytes")
}

vaes_clmul_avx2_features! {
    #[inline]
    fn load(b: &[u8; 32]) -> __m256i {
        // SAFETY: `b` is 32 readable bytes and `loadu` has no alignment
        // requirement; AVX is enabled on this function.
        unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
    }

    #[inline]
    fn store(b: &mut [u8; 32], v: __m256i) {
        // SAFETY: `b` is 32 writable bytes and `storeu` has no alignment
        // requirement; AVX is enabled on this function.
        unsafe { _mm256_storeu_si256(b.as_mut_ptr().cast(), v) }
    }

    fn init(k: &mut Key, key: &[u8; 32]) {
        ks::expand_key(key, &mut k.rk);
        for (wide, rk) in k.rk2.iter_mut().zip(&k.rk) {
            store(wide, _mm256_broadcastsi128_si256(ks::load(rk)));
        }
        let mut powers = [[0u8; 16]; BLOCKS];
        ks::hash_powers(&k.rk, &mut powers);
        for (i, p) in powers.iter().rev().enumerate() {
            k.pows[i] = *p;
        }
        powers.zeroize();
    }

    /// The round-1 table. As in the AES-NI kernel: round 1 of counter
    /// blocks that differ only in their last byte `t` differs by
    /// `aesenc(rk0 ^ t·e15, 0) ^ aesenc(rk0, 0)` (SubBytes is the only
    /// non-linear step, and acts on each byte alone).
    fn build_round1(k: &Key) -> Box<ks::Round1<LOW_BYTES>> {
        let mut table = ks::Round1::<LOW_BYTES>::zeroed();
        let (zero, rk0) = (_mm_setzero_si128(), ks::load(&k.rk[0]));
        let base = _mm_aesenc_si128(rk0, zero);
        // `x = rk0 ^ t·e15`, stepping t by adding 1 to byte 15 alone.
        let (mut x, step) = (rk0, _mm_insert_epi8::<15>(zero, 1));
        let mut t = zero;
        for out in table.0.iter_mut() {
            ks::store(out, _mm_xor_si128(_mm_aesenc_si128(x, zero), base));
            t = _mm_add_epi8(t, step);
            x = _mm_xor_si128(rk0, t);
        }
        table
    }

    /// Round 1 of the block in `ctr`'s (lane 0's) 256-block segment whose
    /// low byte is 0, in both lanes: `r1` of [`first_round`].
    #[inline]
    fn segment_round1(k: &Key, ctr: __m256i) -> __m256i {
        let c = _mm_andnot_si128(_mm_cvtsi32_si128(0xff), _mm256_castsi256_si128(ctr));
        let x = _mm_xor_si128(_mm_shuffle_epi8(c, ks::bswap_mask()), ks::load(&k.rk[0]));
        _mm256_broadcastsi128_si256(_mm_aesenc_si128(x, ks::load(&k.rk[1])))
    }

    /// The two byte-reversed counter blocks of `ctr` with their counters
    /// set to `c` (lane 0) and `c + 1` (lane 1).
    #[inline]
    fn with_counter(ctr: __m256i, c: u32) -> __m256i {
        let ctr = _mm256_insert_epi32::<0>(ctr, c as i32);
        _mm256_insert_epi32::<4>(ctr, c.wrapping_add(1) as i32)
    }

    /// The next stride's 16 counter blocks after AES round 1 (whitening
    /// included), for the counter blocks of `ctr` with their counters set
    /// from `c`; advances `c` by 16, and updates `r1` (round 1 of the
    /// current segment's block with low byte 0) when the stride ends its
    /// segment. The counter is carried in a general register, so the table
    /// loads that start a stride's AES rounds wait on nothing.
    ///
    /// When the 16 low bytes `t0 .. t0 + 16` do not wrap (15 strides in
    /// 16), round 1 of blocks `2m, 2m + 1` is `r1 ^ first[t0 + 2m ..][..2]`:
    /// one XOR with a table load instead of the counter arithmetic, the
    /// whitening XOR and a `vaesenc`. A key without its table (short
    /// messages) takes the counter path every time. The branch and the
    /// table index are the counter, which is public.
    #[inline]
    fn first_round(k: &Key, ctr: __m256i, c: &mut u32, r1: &mut __m256i) -> [__m256i; VECS] {
        let t0 = (*c & 0xff) as usize;
        let s = if let Some(first) = k.first.get().filter(|_| t0 + BLOCKS <= LOW_BYTES) {
            let mut s = [*r1; VECS];
            for (m, s) in s.iter_mut().enumerate() {
                *s = _mm256_xor_si256(*s, load(pair(first, t0 + 2 * m)));
            }
            s
        } else {
            let mut ctr = with_counter(ctr, *c);
            let mut s = counters(k, &mut ctr);
            round(k, &mut s, 1);
            s
        };
        *c = c.wrapping_add(BLOCKS as u32);
        if t0 + BLOCKS >= LOW_BYTES {
            *r1 = segment_round1(k, with_counter(ctr, *c));
        }
        s
    }

    #[inline]
    fn bswap() -> __m256i {
        _mm256_broadcastsi128_si256(ks::bswap_mask())
    }

    /// The 16 counter blocks of the next stride, whitened with round key 0;
    /// advances `ctr` (two byte-reversed counter blocks, lane 1 one ahead).
    ///
    /// When the low byte of the counter does not wrap within the stride (15
    /// strides in 16), the blocks are made by adding to that byte in place
    /// (one byte swap per stride instead of one per register). The branch
    /// is on the counter, which is public (nonce and position).
    #[inline]
    fn counters(k: &Key, ctr: &mut __m256i) -> [__m256i; VECS] {
        let (bswap, rk0) = (bswap(), load(&k.rk2[0]));
        let mut s = [_mm256_setzero_si256(); VECS];
        let low_byte = _mm256_cvtsi256_si32(*ctr) as u32 & 0xff;
        if low_byte < 256 - BLOCKS as u32 {
            let base = _mm256_shuffle_epi8(*ctr, bswap);
            for (j, s) in s.iter_mut().enumerate() {
                let step = (2 * j as i32) << 24;
                let c = _mm256_add_epi32(base, _mm256_set_epi32(step, 0, 0, 0, step, 0, 0, 0));
                *s = _mm256_xor_si256(c, rk0);
            }
        } else {
            for (j, s) in s.iter_mut().enumerate() {
                let step = 2 * j as i32;
                let c = _mm256_add_epi32(*ctr, _mm256_set_epi32(0, 0, 0, step, 0, 0, 0, step));
                *s = _mm256_xor_si256(_mm256_shuffle_epi8(c, bswap), rk0);
            }
        }
        let step = BLOCKS as i32;
        *ctr = _mm256_add_epi32(*ctr, _mm256_set_epi32(0, 0, 0, step, 0, 0, 0, step));
        s
    }

    #[inline]
    fn round(k: &Key, s: &mut [__m256i; VECS], r: usize) {
        let rk = load(&k.rk2[r]);
        for s in s.iter_mut() {
            *s = _mm256_aesenc_epi128(*s, rk);
        }
    }

    #[inline]
    fn last_round(k: &Key, s: &mut [__m256i; VECS]) {
        let rk = load(&k.rk2[ROUND_KEYS - 1]);
        for s in s.iter_mut() {
            *s = _mm256_aesenclast_epi128(*s, rk);
        }
    }

    /// Keystream for the next 16 counter blocks.
    #[inline]
    fn keystream(k: &Key, ctr: &mut __m256i) -> [__m256i; VECS] {
        let mut s = counters(k, ctr);
        for r in 1..ROUND_KEYS - 1 {
            round(k, &mut s, r);
        }
        last_round(k, &mut s);
        s
    }

    /// Adds the products of two blocks `x` (as loaded) with the powers at
    /// table index `i` to the unreduced sums: low halves, the two cross
    /// products (middle), high halves.
    #[inline]
    fn mul_add(k: &Key, sums: &mut [__m256i; 3], x: __m256i, i: usize) {
        let x = _mm256_shuffle_epi8(x, bswap());
        let p = load(pair(&k.pows, i));
        let mi = _mm256_xor_si256(
            _mm256_clmulepi64_epi128::<0x01>(x, p),
            _mm256_clmulepi64_epi128::<0x10>(x, p),
        );
        sums[0] = _mm256_xor_si256(sums[0], _mm256_clmulepi64_epi128::<0x00>(x, p));
        sums[1] = _mm256_xor_si256(sums[1], mi);
        sums[2] = _mm256_xor_si256(sums[2], _mm256_clmulepi64_epi128::<0x11>(x, p));
    }

    /// [`ks::reduce`] on both lanes.
    #[inline]
    fn reduce2(lo: __m256i, mi: __m256i, hi: __m256i) -> __m256i {
        let poly = _mm256_set_epi64x(0, ks::POLY, 0, ks::POLY);
        let mi = _mm256_xor_si256(mi, _mm256_shuffle_epi32::<0x4e>(lo));
        let mi = _mm256_xor_si256(mi, _mm256_clmulepi64_epi128::<0x00>(lo, poly));
        let hi = _mm256_xor_si256(hi, _mm256_shuffle_epi32::<0x4e>(mi));
        _mm256_xor_si256(hi, _mm256_clmulepi64_epi128::<0x00>(mi, poly))
    }

    /// Reduces both lanes of the sums and adds them (the reduction is
    /// linear): the new accumulator.
    #[inline]
    fn finish(sums: &[__m256i; 3]) -> __m128i {
        let r = reduce2(sums[0], sums[1], sums[2]);
        _mm_xor_si128(_mm256_castsi256_si128(r), _mm256_extracti128_si256::<1>(r))
    }

    /// The accumulator as the first register's addend (low lane).
    #[inline]
    fn widen(acc: __m128i) -> __m256i {
        _mm256_zextsi128_si256(acc)
    }

    /// Hashes the first `n` blocks of `data` (n <= 16; blocks past n are
    /// ignored only if they are zero: callers zero-pad).
    fn ghash_upto16(k: &Key, acc: __m128i, data: &[u8; STRIDE], n: usize) -> __m128i {
        if n == 0 {
            return acc;
        }
        let (regs, _) = data.as_chunks::<32>();
        let mut sums = [_mm256_setzero_si256(); 3];
        for (m, r) in regs.iter().take(n.div_ceil(2)).enumerate() {
            let mut x = load(r);
            if m == 0 {
                x = _mm256_xor_si256(x, _mm256_shuffle_epi8(widen(acc), bswap()));
            }
            mul_add(k, &mut sums, x, BLOCKS - n + 2 * m);
        }
        finish(&sums)
    }

    /// Hashes `data`, zero-padded to whole blocks.
    fn ghash_padded(k: &Key, mut acc: __m128i, data: &[u8]) -> __m128i {
        let (strides, tail) = data.as_chunks::<STRIDE>();
        for s in strides {
            acc = ghash_upto16(k, acc, s, BLOCKS);
        }
        if !tail.is_empty() {
            let mut tmp = [0u8; STRIDE];
            tmp[..tail.len()].copy_from_slice(tail);
            acc = ghash_upto16(k, acc, &tmp, tail.len().div_ceil(16));
        }
        acc
    }

    #[inline]
    fn xor_into(out: &mut [u8; STRIDE], ks: &[__m256i; VECS]) {
        let (out, _) = out.as_chunks_mut::<32>();
        for (o, ks) in out.iter_mut().zip(ks) {
            store(o, _mm256_xor_si256(load(o), *ks));
        }
    }

    /// `out = src ^ ks`.
    #[inline]
    fn xor_from(out: &mut [u8; STRIDE], src: &[u8; STRIDE], ks: &[__m256i; VECS]) {
        let (out, _) = out.as_chunks_mut::<32>();
        let (src, _) = src.as_chunks::<32>();
        for ((o, i), ks) in out.iter_mut().zip(src).zip(ks) {
            store(o, _mm256_xor_si256(load(i), *ks));
        }
    }

    /// The stitched kernel, over whole strides (any number, none included).
    /// Each iteration runs the AES rounds of 16 counter blocks interleaved
    /// with the GHASH of 16 ciphertext blocks and one reduction: when
    /// sealing, those of the stride written `LAG` (2) iterations before
    /// (the first two strides are only encrypted, the last two only hashed
    /// after the loop); when opening, those of the current stride, before
    /// it is overwritten.
    /// Returns the new accumulator.
    ///
    /// With `OOP` (out of place), the input is read from `src` (as many
    /// strides as `data`) and `data` is only written: when sealing, `data`
    /// is hashed after it is written; when opening, `src` is hashed.
    /// Without it `src` is ignored. A const parameter, so that the in-place
    /// loop compiles exactly as it would without the out-of-place one.
    fn crypt_strides<const SEAL: bool, const OOP: bool>(
        k: &Key,
        ctr: &mut __m256i,
        mut acc: __m128i,
        data: &mut [[u8; STRIDE]],
        src: &[[u8; STRIDE]],
    ) -> __m128i {
        let n = data.len();
        if n == 0 {
            return acc;
        }
        let lag = if SEAL { LAG.min(n) } else { 0 };
        for i in 0..lag {
            if OOP {
                xor_from(&mut data[i], &src[i], &keystream(k, ctr));
            } else {
                xor_into(&mut data[i], &keystream(k, ctr));
            }
        }
        let mut r1 = segment_round1(k, *ctr);
        let mut c = _mm256_cvtsi256_si32(*ctr) as u32;
        for i in lag..n {
            // An opaque copy of the key reference, so that the round keys
            // and powers are loaded inside the loop (as memory operands)
            // instead of being hoisted into registers and spilled.
            let k = core::hint::black_box(k);
            ks::prefetch_ahead(if OOP { &src[i] } else { &data[i] });
            let hashed: &[u8; STRIDE] = if OOP && !SEAL {
                &src[i]
            } else {
                &data[if SEAL { i - LAG } else { i }]
            };
            let (h, _) = hashed.as_chunks::<32>();
            let mut s = first_round(k, *ctr, &mut c, &mut r1);
            let mut sums = [_mm256_setzero_si256(); 3];
            let a = _mm256_shuffle_epi8(widen(acc), bswap());
            macro_rules! step {
                ($r:literal, $m:literal) => {
                    round(k, &mut s, $r);
                    let x = load(&h[$m]);
                    let x = if $m == 0 { _mm256_xor_si256(x, a) } else { x };
                    mul_add(k, &mut sums, x, 2 * $m);
                };
            }
            step!(2, 0);
            step!(3, 1);
            step!(4, 2);
            step!(5, 3);
            step!(6, 4);
            step!(7, 5);
            step!(8, 6);
            step!(9, 7);
            acc = finish(&sums);
            for r in 10..ROUND_KEYS - 1 {
                round(k, &mut s, r);
            }
            last_round(k, &mut s);
            // When opening, an opaque reference to the stride just hashed,
            // so that its blocks are loaded again as `vpxor` memory operands
            // rather than kept from the hashing loads and spilled.
            let out = &mut data[i];
            if OOP {
                xor_from(out, &src[i], &s);
            } else {
                xor_into(if SEAL { out } else { core::hint::black_box(out) }, &s);
            }
        }
        *ctr = with_counter(*ctr, c);
        if SEAL {
            for d in &data[n - lag..] {
                acc = ghash_upto16(k, acc, d, BLOCKS);
            }
        }
        acc
    }

    /// The last partial stride (1 to 255 bytes), through a zero-padded
    /// copy on the stack, hashed together with the length block `len` when
    /// there is room for it.
    /// With `src`, the input is read from it (as long as `tail`) and
    /// `tail` is only written.
    fn crypt_tail<const SEAL: bool>(
        k: &Key,
        ctr: &mut __m256i,
        mut acc: __m128i,
        tail: &mut [u8],
        src: Option<&[u8]>,
        len: &[u8; 16],
    ) -> __m128i {
        let mut tmp = [0u8; STRIDE];
        let n = tail.len().div_ceil(16);
        let with_len = n < BLOCKS;
        let hashed = n + usize::from(with_len);
        tmp[..tail.len()].copy_from_slice(src.unwrap_or(tail));
        if with_len {
            tmp[16 * n..16 * n + 16].copy_from_slice(len);
        }
        if !SEAL {
            acc = ghash_upto16(k, acc, &tmp, hashed);
        }
        let mut ks = keystream(k, ctr);
        let (regs, _) = tmp.as_chunks_mut::<32>();
        for (r, ks) in regs.iter_mut().zip(&ks).take(n.div_ceil(2)) {
            store(r, _mm256_xor_si256(load(r), *ks));
        }
        ks.zeroize();
        tail.copy_from_slice(&tmp[..tail.len()]);
        if SEAL {
            tmp[tail.len()..16 * n].fill(0);
            if with_len {
                tmp[16 * n..16 * n + 16].copy_from_slice(len);
            }
            acc = ghash_upto16(k, acc, &tmp, hashed);
        }
        ks::wipe(&mut tmp);
        if !with_len {
            acc = ks::ghash_block(acc, len, &k.pows[BLOCKS - 1]);
        }
        acc
    }

    /// GCM with the first message block at counter `ctr0` (2 in GCM; other
    /// values only in tests of the 32-bit wrap). Returns the tag over `aad`
    /// and the ciphertext.
    ///
    /// In place, or, with `src` (exactly as long as `buf`), from `src` into
    /// `buf`; when opening, the ciphertext hashed is then `src`'s. A `src`
    /// of another length is ignored (in place), which callers never ask
    /// for (`seal_to`/`open_to` pass equal lengths).
    fn crypt<const SEAL: bool>(
        k: &Key,
        nonce: &[u8; NONCE_LEN],
        ctr0: u32,
        aad: &[u8],
        buf: &mut [u8],
        src: Option<&[u8]>,
    ) -> [u8; TAG_LEN] {
        let src = src.filter(|s| s.len() == buf.len());
        if k.first.wanted(buf.len()) {
            k.first.set(build_round1(k));
        }
        let mut block = [0u8; 16];
        block[..NONCE_LEN].copy_from_slice(nonce);
        block[12..].copy_from_slice(&1u32.to_be_bytes());
        let mut mask = ks::encrypt_block(&k.rk, ks::load(&block));
        block[12..].copy_from_slice(&ctr0.to_be_bytes());
        let c = _mm_shuffle_epi8(ks::load(&block), ks::bswap_mask());
        let mut ctr = _mm256_add_epi32(
            _mm256_broadcastsi128_si256(c),
            _mm256_set_epi32(0, 0, 0, 1, 0, 0, 0, 0),
        );

        let mut acc = ghash_padded(k, _mm_setzero_si128(), aad);
        let (strides, _) = buf.as_chunks_mut::<STRIDE>();
        acc = match src {
            Some(src) => {
                let (src_strides, _) = src.as_chunks::<STRIDE>();
                crypt_strides::<SEAL, true>(k, &mut ctr, acc, strides, src_strides)
            }
            None => crypt_strides::<SEAL, false>(k, &mut ctr, acc, strides, &[]),
        };
        let len = length_block(aad.len(), buf.len());
        let tail_at = buf.len() - buf.len() % STRIDE;
        let src_tail = src.map(|s| &s[tail_at..]);
        acc = match &mut buf[tail_at..] {
            [] => ks::ghash_block(acc, &len, &k.pows[BLOCKS - 1]),
            tail => crypt_tail::<SEAL>(k, &mut ctr, acc, tail, src_tail, &len),
        };
        let s = _mm_shuffle_epi8(acc, ks::bswap_mask());
        let mut tag = [0u8; TAG_LEN];
        ks::store(&mut tag, _mm_xor_si128(s, mask));
        mask.zeroize();
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{self as ts, CryptFn};
    use super::*;

    /// `crypt` on `k`, as the shared tests call it.
    fn kernel(k: &Key) -> Box<CryptFn<'_>> {
        Box::new(move |seal, nonce, ctr0, aad, buf, src| {
            // SAFETY: `k` was made by `Key::new`, which takes an
            // `VaesClmulAvx2` witness: only `detect()` creates one.
            unsafe {
                if seal {
                    crypt::<true>(k, nonce, ctr0, aad, buf, src)
                } else {
                    crypt::<false>(k, nonce, ctr0, aad, buf, src)
                }
            }
        })
    }

    /// Two keys from `key`: one that builds its round-1 table for every
    /// message, one that never does (so both paths meet every case).
    fn both_paths(key: &[u8; 32], cpu: VaesClmulAvx2) -> [Box<Key>; 2] {
        [0, usize::MAX].map(|from| {
            let mut k = Key::new(key, cpu);
            k.first.from = from;
            k
        })
    }

    #[test]
    fn counter_wraps_at_2_pow_32() {
        let Some(cpu) = VaesClmulAvx2::detect() else {
            eprintln!("skipped: no VAES on this CPU");
            return;
        };
        for k in both_paths(&core::array::from_fn(|i| i as u8 * 7 + 1), cpu) {
            let lens = [1, 17, 255, 256, 600, 1024, 4 * 1024 + 5];
            ts::counter_wraps(&*kernel(&k), &lens);
        }
    }

    #[test]
    fn every_tail_0_to_256_blocks() {
        let Some(cpu) = VaesClmulAvx2::detect() else {
            eprintln!("skipped: no VAES on this CPU");
            return;
        };
        let key = ts::test_keys()[0];
        for k in both_paths(&key, cpu) {
            ts::every_block_count(&*kernel(&k), &key);
        }
    }

    #[test]
    fn round1_table_is_the_low_bytes_contribution() {
        let Some(cpu) = VaesClmulAvx2::detect() else {
            eprintln!("skipped: no VAES on this CPU");
            return;
        };
        for key in ts::test_keys() {
            let k = Key::new(&key, cpu);
            let direct = |b: &[u8; 16]| {
                let mut out = [0u8; 16];
                // SAFETY: `cpu` is a `VaesClmulAvx2` witness from `detect()`
                // (AES-NI among its features; SSE2 is baseline).
                ks::store(&mut out, unsafe {
                    let x = _mm_xor_si128(ks::load(b), ks::load(&k.rk[0]));
                    _mm_aesenc_si128(x, ks::load(&k.rk[1]))
                });
                out
            };
            // SAFETY: `cpu` is a `VaesClmulAvx2` witness from `detect()`, which
            // checked every feature `build_round1` is compiled for.
            let table = unsafe { build_round1(&k) };
            let first = |t: u8| table.0[usize::from(t)];
            ts::round1_table(key[15], direct, first);
            // A long message installs the table; a short one does not.
            let mut buf = [0u8; 64];
            kernel(&k)(true, &[0; 12], 2, b"", &mut buf, None);
            assert!(k.first.get().is_none());
            let mut buf = vec![0u8; ks::ROUND1_FROM];
            kernel(&k)(true, &[0; 12], 2, b"", &mut buf, None);
            assert_eq!(k.first.get(), Some(&table.0));
        }
    }

    #[test]
    fn every_low_byte_and_segment_boundary_both_ways() {
        let Some(cpu) = VaesClmulAvx2::detect() else {
            eprintln!("skipped: no VAES on this CPU");
            return;
        };
        for (key, k) in ts::test_keys()
            .into_iter()
            .flat_map(|key| both_paths(&key, cpu).map(|k| (key, k)))
        {
            // 3, 5, 17 and 40 strides (40 cross two or three 256-block
            // segments), each with a tail (one of 13 blocks).
            let lens = [3 * 256 + 1, 5 * 256 + 9, 17 * 256 + 200, 40 * 256 + 3];
            ts::every_low_byte(&*kernel(&k), &key, &lens);
        }
    }
}
