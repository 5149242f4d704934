//! AES-256-GCM on 512-bit registers with VAES, VPCLMULQDQ and AVX-512
//! (F, BW, VL): the design of [`super::vaes_avx2`] four blocks per register,
//! with masked loads and stores for the last partial stride.
//!
//! Precondition of the stitched loop ([`crypt_strides`]): whole strides of
//! 16 blocks (4 registers), any number of them; [`crypt`] splits the message
//! and finishes the last 0 to 255 bytes in [`crypt_tail`].
//!
//! In each stride the AES rounds of 16 counter blocks are interleaved with
//! the GHASH of 16 ciphertext blocks: when sealing, those written two
//! strides earlier (hashed after they are stored, so the hashing loads do
//! not wait on the stores); when opening, the current stride's, before they
//! are overwritten. Each block is multiplied by its own power of H with
//! four carry-less multiplies (low, high, both cross products); the products
//! of two strides are summed unreduced (powers `K_32 … K_1`) and reduced
//! once, with one three-way XOR (`vpternlogq`) per sum where two products
//! meet. Round 1 of every counter block, the whitening included, is one XOR
//! of a per-segment value with a per-key table of what the counter's low
//! byte contributes ([`first_round`]): 13 `vaesenc`/`vaesenclast` per
//! register, not 14. Where the low byte wraps inside a stride, the blocks
//! past the wrap take the next segment's value through a mask blend, so
//! there is no slower path. The last round takes the data XORed into its
//! round key ([`last_into`]). Per register of 4 blocks the loop issues
//! about 24 vector µops: 13 AES, 4 carry-less multiplies, 1 byte reversal,
//! 1 round-1 XOR, 2 sum XORs (three-way), 1 XOR of the data into the last
//! round key, and a quarter of a reduction (about 10 µops per 32 blocks);
//! with 512-bit code the AES unit and the other vector µops share port 0,
//! so the 11 others have to fit on port 5 beside the AES unit's 13.
//! Strides of 32 blocks (8 registers, one reduction each, lagging one
//! stride) measured about 3% slower against aws-lc-rs than these.
//!
//! The tail runs only the ⌈len/64⌉ registers it needs (so a 64-byte
//! message costs one register of AES and one of GHASH besides the tag
//! block), and hashes the length block in the same reduction.
//!
//! Counters are 32-bit and wrap (inc32 of SP 800-38D): the counter lives in
//! a general register as a `u32`, and the segment values are recomputed
//! from it with wrapping arithmetic. Nothing branches on or indexes memory
//! by secret data (the round-1 table is indexed by the counter, which is
//! public; the tail masks depend on the length, which is public).
//!
//! The AVX-512 intrinsics and target features are stable since Rust 1.89.

use core::arch::x86_64::*;

use zeroize::Zeroize;

use super::VaesClmulAvx512;
use super::key_schedule::{self as ks, ROUND_KEYS};
use super::prefix;
use crate::cipher::{NONCE_LEN, TAG_LEN, length_block};

/// Blocks per stride.
const BLOCKS: usize = 16;
/// Bytes per stride.
const STRIDE: usize = 16 * BLOCKS;
/// Registers per stride.
const VECS: usize = BLOCKS / 4;
/// When sealing, the stride hashed in each iteration is the one written
/// `LAG` iterations earlier.
const LAG: usize = 2;
/// Hash-key powers: two strides' worth, reduced once per pair of strides.
const POWERS: usize = 2 * BLOCKS;
/// Values of the counter's low byte.
const LOW_BYTES: usize = 256;
/// Round-1 table entries: every low byte, then the first stride's again,
/// so a 64-byte load at any low byte of a stride stays in the table.
const FIRST: usize = LOW_BYTES + BLOCKS;

/// A keyed VAES-512 kernel: round keys, hash-key powers and the round-1
/// table, zeroized on drop. Aligned so that the 64-byte round keys and
/// powers never straddle cache lines.
#[repr(C, align(64))]
pub(crate) struct Key {
    /// Round keys, each repeated in the four 128-bit lanes.
    rk4: [[u8; 64]; ROUND_KEYS],
    /// `pows[i] = K_(32-i)` for i < 32, then zeros: the j-th of n blocks
    /// (from 0) hashed in one sum takes `pows[32 - n + j]`, and a 64-byte
    /// load at `32 - n + 4m` gives the powers of the m-th register's four
    /// blocks (the zeros meet only zero padding).
    pows: [[u8; 16]; POWERS + 4],
    /// `first[t]`: what a low counter byte of `t mod 256` adds to round 1
    /// (whitening included) of a counter block whose low byte is 0; a
    /// 64-byte load at `t` gives the entries of four consecutive blocks.
    /// Indexed only by the counter, which is public; its entries depend on
    /// one key byte, so it is wiped when dropped. Built by the first
    /// message of at least [`ks::ROUND1_FROM`] bytes (see [`build_round1`]).
    first: ks::LazyRound1<FIRST>,
    /// Round keys, for one block.
    rk: [[u8; 16]; ROUND_KEYS],
    /// Proof that the CPU has the target features of every function here.
    cpu: VaesClmulAvx512,
}

impl Drop for Key {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// Wiped keys kept by each thread for its next key set-ups, at most this
/// many. A key is 64-byte aligned, which glibc serves from `memalign`: its
/// split-off remainders made every later large `free` consolidate the
/// allocator's fast bins, and allocating, freeing and consolidating were
/// about a fifth of setting a key up.
const SPARE_KEYS: usize = 4;

thread_local! {
    // Boxes, not keys: a spare is handed out with its (aligned) allocation.
    #[allow(clippy::vec_box)]
    static SPARE: core::cell::RefCell<Vec<Box<Key>>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// A keyed kernel on the heap. Dropped, it is wiped and its allocation
/// kept for the thread's next key (up to [`SPARE_KEYS`]; freed otherwise).
pub(crate) struct Pooled(Option<Box<Key>>);

impl core::ops::Deref for Pooled {
    type Target = Key;

    #[inline]
    fn deref(&self) -> &Key {
        self.0.as_deref().expect("present until dropped")
    }
}

impl core::ops::DerefMut for Pooled {
    #[inline]
    fn deref_mut(&mut self) -> &mut Key {
        self.0.as_deref_mut().expect("present until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(mut k) = self.0.take() {
            k.wipe();
            // Past the thread's end (no pool), or with the pool full, the
            // key is freed (and wiped again by its own drop).
            let _ = SPARE.try_with(move |spare| {
                let mut spare = spare.borrow_mut();
                if spare.len() < SPARE_KEYS {
                    spare.push(k);
                }
            });
        }
    }
}

impl Pooled {
    /// Keys a kernel, in a spare allocation of this thread if it has one.
    pub(crate) fn new(key: &[u8; 32], cpu: VaesClmulAvx512) -> Self {
        let spare = SPARE
            .try_with(|spare| spare.borrow_mut().pop())
            .ok()
            .flatten();
        // A spare key is wiped: all zeros, no round-1 table, the default
        // threshold; `cpu` is the same witness (one CPU per process).
        let mut k = spare.unwrap_or_else(|| {
            Box::new(Key {
                rk4: [[0; 64]; ROUND_KEYS],
                pows: [[0; 16]; POWERS + 4],
                first: ks::LazyRound1::new(),
                rk: [[0; 16]; ROUND_KEYS],
                cpu,
            })
        });
        // SAFETY: `cpu` is a `VaesClmulAvx512` witness, which only
        // `detect()` creates after checking every feature `init` is
        // compiled for (a spare key holds such a witness too).
        unsafe { init(&mut k, key) };
        Pooled(Some(k))
    }
}

impl Key {
    /// Zeroes the round keys and powers and drops the round-1 table (which
    /// wipes itself); `pows` past the 32 powers stay zero, as `init` needs.
    fn wipe(&mut self) {
        ks::wipe_slice(self.rk4.as_flattened_mut());
        ks::wipe_slice(self.pows.as_flattened_mut());
        ks::wipe_slice(self.rk.as_flattened_mut());
        self.first = ks::LazyRound1::new();
    }

    /// Seals `buf` in place, or, with `src`, seals `src` into `buf` in one
    /// pass. Equal lengths are the caller's contract; were they to differ,
    /// only the common prefix is sealed, from `src`.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        src: Option<&[u8]>,
    ) -> [u8; TAG_LEN] {
        let (buf, src) = prefix(buf, src);
        let _cpu: VaesClmulAvx512 = self.cpu;
        // SAFETY: `_cpu` is a `VaesClmulAvx512` witness (see `new`).
        unsafe { crypt::<true>(self, nonce, 2, aad, buf, src) }
    }

    /// Decrypts `buf` in place, or `src` into `buf`; returns the expected
    /// tag, computed over the ciphertext (the caller compares it and wipes
    /// `buf` on a mismatch).
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        src: Option<&[u8]>,
    ) -> [u8; TAG_LEN] {
        let (buf, src) = prefix(buf, src);
        let _cpu: VaesClmulAvx512 = self.cpu;
        // SAFETY: `_cpu` is a `VaesClmulAvx512` witness (see `new`).
        unsafe { crypt::<false>(self, nonce, 2, aad, buf, src) }
    }
}

/// 64 bytes of a table of 16-byte entries, from entry `i`.
#[inline]
fn quad<const N: usize>(t: &[[u8; 16]; N], i: usize) -> &[u8; 64] {
    t.as_flattened()[16 * i..16 * i + 64]
        .try_into()
        .expect("64 bytes")
}

/// The mask of the first `n` bytes of a register (all of them from 64).
#[inline]
fn byte_mask(n: usize) -> u64 {
    if n >= 64 { !0 } else { (1u64 << n) - 1 }
}

vaes_clmul_avx512_features! {
    #[inline]
    fn load(b: &[u8; 64]) -> __m512i {
        // SAFETY: `b` is 64 readable bytes and `loadu` has no alignment
        // requirement; AVX-512F is enabled on this function.
        unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
    }

    #[inline]
    fn store(b: &mut [u8; 64], v: __m512i) {
        // SAFETY: `b` is 64 writable bytes and `storeu` has no alignment
        // requirement; AVX-512F is enabled on this function.
        unsafe { _mm512_storeu_si512(b.as_mut_ptr().cast(), v) }
    }

    /// The first `min(b.len(), 64)` bytes of `b`, zeros after.
    #[inline]
    fn load_part(b: &[u8]) -> __m512i {
        // SAFETY: the mask enables only the first `min(b.len(), 64)`
        // bytes, all inside `b`; a masked load neither reads nor faults on
        // disabled bytes. AVX-512BW is enabled on this function.
        unsafe { _mm512_maskz_loadu_epi8(byte_mask(b.len()), b.as_ptr().cast()) }
    }

    /// Stores the first `min(b.len(), 64)` bytes of `v` into `b`.
    #[inline]
    fn store_part(b: &mut [u8], v: __m512i) {
        // SAFETY: the mask enables only the first `min(b.len(), 64)`
        // bytes, all inside `b`; a masked store neither writes nor faults
        // on disabled bytes. AVX-512BW is enabled on this function.
        unsafe { _mm512_mask_storeu_epi8(b.as_mut_ptr().cast(), byte_mask(b.len()), v) }
    }

    #[inline]
    fn bswap() -> __m512i {
        _mm512_broadcast_i32x4(ks::bswap_mask())
    }

    /// `dot` of [`super::key_schedule`] on each of the four lanes.
    #[inline]
    fn dot4(a: __m512i, b: __m512i) -> __m512i {
        let lo = _mm512_clmulepi64_epi128::<0x00>(a, b);
        let hi = _mm512_clmulepi64_epi128::<0x11>(a, b);
        let mi = _mm512_xor_si512(
            _mm512_clmulepi64_epi128::<0x01>(a, b),
            _mm512_clmulepi64_epi128::<0x10>(a, b),
        );
        reduce4(lo, mi, hi)
    }

    fn init(k: &mut Key, key: &[u8; 32]) {
        ks::expand_key(key, &mut k.rk);
        for (wide, rk) in k.rk4.iter_mut().zip(&k.rk) {
            store(wide, _mm512_broadcast_i32x4(ks::load(rk)));
        }
        // K_1 .. K_4 one at a time, then four at a time, in a tree rather
        // than a chain of 7 products (key set-up time is per-object cost):
        // [K_4 .. K_1] times K_4 is [K_8 .. K_5]; the four powers below
        // times K_8 give [K_16 .. K_9], and the eight times K_16 the rest.
        let mut low = [[0u8; 16]; 4];
        ks::hash_powers(&k.rk, &mut low);
        low.reverse();
        let mut g = [_mm512_setzero_si512(); POWERS / 4];
        g[0] = load(low.as_flattened().try_into().expect("64 bytes"));
        low.zeroize();
        // The highest power of a group is its lane 0.
        let top = |v: __m512i| _mm512_broadcast_i32x4(_mm512_castsi512_si128(v));
        g[1] = dot4(g[0], top(g[0]));
        let k8 = top(g[1]);
        g[2] = dot4(g[0], k8);
        g[3] = dot4(g[1], k8);
        let k16 = top(g[3]);
        for i in 4..8 {
            g[i] = dot4(g[i - 4], k16);
        }
        for (group, p) in k.pows[..POWERS].as_chunks_mut::<4>().0.iter_mut().rev().zip(g) {
            store(group.as_flattened_mut().try_into().expect("64 bytes"), p);
        }
        g.zeroize();
    }

    /// The round-1 table: as in the other kernels, round 1 of counter
    /// blocks that differ only in their last byte `t` differs by
    /// `aesenc(rk0 ^ t·e15, 0) ^ aesenc(rk0, 0)`; four entries at a time,
    /// t stepping by 4 in byte 15 of each lane (mod 256, so the entries
    /// past 255 repeat the first ones).
    fn build_round1(k: &Key) -> Box<ks::Round1<FIRST>> {
        let mut table = ks::Round1::<FIRST>::zeroed();
        let zero = _mm512_setzero_si512();
        let rk0 = load(&k.rk4[0]);
        let base = _mm512_aesenc_epi128(rk0, zero);
        let lane_t = |t: i32| _mm_set_epi32(t << 24, 0, 0, 0);
        let mut t = _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_set_m128i(lane_t(1), lane_t(0))),
            _mm256_set_m128i(lane_t(3), lane_t(2)),
        );
        let step = _mm512_broadcast_i32x4(lane_t(4));
        for group in table.0.as_chunks_mut::<4>().0 {
            let x = _mm512_xor_si512(rk0, t);
            let e = _mm512_xor_si512(_mm512_aesenc_epi128(x, zero), base);
            store(group.as_flattened_mut().try_into().expect("64 bytes"), e);
            t = _mm512_add_epi8(t, step);
        }
        table
    }

    /// Round 1 (whitening included) of the four counter blocks `v .. v + 4`
    /// (mod 2^32) of `nb`, computed from the blocks: the path of keys
    /// without a round-1 table. The counter is public.
    #[inline]
    fn direct_round1(k: &Key, nb: __m128i, v: u32) -> __m512i {
        let b = _mm_insert_epi32::<3>(nb, v.swap_bytes() as i32);
        let b = if v & 0xff <= 0xff - 3 {
            // No carry out of the low byte: add 0..3 to byte 15 in place
            // (the latency of two shuffles less, for short messages).
            _mm512_add_epi32(
                _mm512_broadcast_i32x4(b),
                _mm512_set_epi32(3 << 24, 0, 0, 0, 2 << 24, 0, 0, 0, 1 << 24, 0, 0, 0, 0, 0, 0, 0),
            )
        } else {
            // Byte-reversed, the counter is dword 0 of each lane.
            let b = _mm512_broadcast_i32x4(_mm_shuffle_epi8(b, ks::bswap_mask()));
            let b = _mm512_add_epi32(
                b,
                _mm512_set_epi32(0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0),
            );
            _mm512_shuffle_epi8(b, bswap())
        };
        _mm512_aesenc_epi128(_mm512_xor_si512(b, load(&k.rk4[0])), load(&k.rk4[1]))
    }

    /// Round 1 (whitening included) of the counter block `nb` with its
    /// counter set to `v` rounded down to a multiple of 256 (the block of
    /// `v`'s segment whose low byte is 0), in all four lanes.
    #[inline]
    fn segment_round1(k: &Key, nb: __m128i, v: u32) -> __m512i {
        let b = _mm_insert_epi32::<3>(nb, (v & !0xff).swap_bytes() as i32);
        let x = _mm_xor_si128(b, ks::load(&k.rk[0]));
        _mm512_broadcast_i32x4(_mm_aesenc_si128(x, ks::load(&k.rk[1])))
    }

    /// The next `4·R` counter blocks after AES round 1 (whitening
    /// included), from counter `c` (advanced by `4·R`); `r1` holds round 1
    /// of the block of `c`'s segment whose low byte is 0, and is moved to
    /// the next segment when these blocks reach it.
    ///
    /// Block j is `r1 ^ first[t0 + j]` with `t0` the low byte of `c`;
    /// blocks past a wrap of the low byte take the next segment's value
    /// instead (a mask blend; `first` repeats its first entries past 255).
    /// Without a table (short messages), the blocks' round 1 is computed
    /// from the counter blocks ([`direct_round1`]). The branches, masks and
    /// table index are the counter, which is public.
    #[inline]
    fn first_round<const R: usize>(
        k: &Key,
        nb: __m128i,
        c: &mut u32,
        r1: &mut __m512i,
    ) -> [__m512i; R] {
        let t0 = (*c & 0xff) as usize;
        let end = t0 + 4 * R;
        let Some(first) = k.first.get() else {
            return first_round_direct::<R>(k, nb, c, r1);
        };
        let mut s = [*r1; R];
        if end >= LOW_BYTES {
            let next = segment_round1(k, nb, (*c | 0xff).wrapping_add(1));
            if end > LOW_BYTES {
                for (m, s) in s.iter_mut().enumerate() {
                    // Blocks of register m still in this segment.
                    let before = (LOW_BYTES - t0).saturating_sub(4 * m).min(4);
                    let wrapped = (0xff_u32 << (2 * before)) as u8;
                    *s = _mm512_mask_blend_epi64(wrapped, *s, next);
                }
            }
            *r1 = next;
        }
        for (m, s) in s.iter_mut().enumerate() {
            *s = _mm512_xor_si512(*s, load(quad(first, t0 + 4 * m)));
        }
        *c = c.wrapping_add(4 * R as u32);
        s
    }

    /// [`first_round`] for a key without its table, out of line so that
    /// the table path stays small enough to be inlined into the stride
    /// loop (inlining this path too cost the long messages about 8%).
    #[inline(never)]
    fn first_round_direct<const R: usize>(
        k: &Key,
        nb: __m128i,
        c: &mut u32,
        r1: &mut __m512i,
    ) -> [__m512i; R] {
        let s = core::array::from_fn(|m| direct_round1(k, nb, c.wrapping_add(4 * m as u32)));
        if (*c & 0xff) as usize + 4 * R >= LOW_BYTES {
            // Kept current, should another thread build the table.
            *r1 = segment_round1(k, nb, (*c | 0xff).wrapping_add(1));
        }
        *c = c.wrapping_add(4 * R as u32);
        s
    }

    #[inline]
    fn round<const R: usize>(k: &Key, s: &mut [__m512i; R], r: usize) {
        let rk = load(&k.rk4[r]);
        for s in s.iter_mut() {
            *s = _mm512_aesenc_epi128(*s, rk);
        }
    }

    /// Adds the products of four byte-reversed blocks `x` with the powers
    /// `p` to the unreduced sums: low halves, cross products, high halves.
    #[inline]
    fn mul_add(sums: &mut [__m512i; 3], x: __m512i, p: __m512i) {
        let lo = _mm512_clmulepi64_epi128::<0x00>(x, p);
        let m0 = _mm512_clmulepi64_epi128::<0x01>(x, p);
        let m1 = _mm512_clmulepi64_epi128::<0x10>(x, p);
        let hi = _mm512_clmulepi64_epi128::<0x11>(x, p);
        sums[0] = _mm512_xor_si512(sums[0], lo);
        sums[1] = _mm512_ternarylogic_epi64::<0x96>(sums[1], m0, m1);
        sums[2] = _mm512_xor_si512(sums[2], hi);
    }

    /// [`ks::reduce`] on each of the four lanes, each fold one three-way XOR.
    #[inline]
    fn reduce4(lo: __m512i, mi: __m512i, hi: __m512i) -> __m512i {
        let poly = _mm512_broadcast_i32x4(_mm_set_epi64x(0, ks::POLY));
        let mi = _mm512_ternarylogic_epi64::<0x96>(
            mi,
            _mm512_shuffle_epi32::<0x4e>(lo),
            _mm512_clmulepi64_epi128::<0x00>(lo, poly),
        );
        _mm512_ternarylogic_epi64::<0x96>(
            hi,
            _mm512_shuffle_epi32::<0x4e>(mi),
            _mm512_clmulepi64_epi128::<0x00>(mi, poly),
        )
    }

    /// Reduces the four lanes of the sums and adds them (the reduction is
    /// linear): the new accumulator.
    #[inline]
    fn finish(sums: &[__m512i; 3]) -> __m128i {
        let r = reduce4(sums[0], sums[1], sums[2]);
        let r = _mm256_xor_si256(_mm512_castsi512_si256(r), _mm512_extracti64x4_epi64::<1>(r));
        _mm_xor_si128(_mm256_castsi256_si128(r), _mm256_extracti128_si256::<1>(r))
    }

    /// The first register's block 0 plus the accumulator, both
    /// byte-reversed (the accumulator is kept reversed).
    #[inline]
    fn with_acc(x: __m512i, acc: __m128i) -> __m512i {
        _mm512_xor_si512(x, _mm512_zextsi128_si512(acc))
    }

    /// Hashes `data` (at most one stride), zero-padded to whole blocks, in
    /// one reduction.
    fn ghash_upto16(k: &Key, acc: __m128i, data: &[u8]) -> __m128i {
        if data.is_empty() {
            return acc;
        }
        let n = data.len().div_ceil(16);
        let mut sums = [_mm512_setzero_si512(); 3];
        for (m, chunk) in data.chunks(64).enumerate() {
            let x = _mm512_shuffle_epi8(load_part(chunk), bswap());
            let x = if m == 0 { with_acc(x, acc) } else { x };
            mul_add(&mut sums, x, load(quad(&k.pows, POWERS - n + 4 * m)));
        }
        finish(&sums)
    }

    /// Hashes `data`, zero-padded to whole blocks.
    fn ghash_padded(k: &Key, mut acc: __m128i, data: &[u8]) -> __m128i {
        for chunk in data.chunks(STRIDE) {
            acc = ghash_upto16(k, acc, chunk);
        }
        acc
    }

    /// The last AES round of the states `s` with the data XORed into its
    /// round key (`aesenclast(s, rk ^ d) = aesenclast(s, rk) ^ d`), so the
    /// XOR with the data waits on nothing: `out ^= keystream`.
    #[inline]
    fn last_into(k: &Key, out: &mut [u8; STRIDE], s: &[__m512i; VECS]) {
        let rk = load(&k.rk4[ROUND_KEYS - 1]);
        let (out, _) = out.as_chunks_mut::<64>();
        for (o, s) in out.iter_mut().zip(s) {
            store(o, _mm512_aesenclast_epi128(*s, _mm512_xor_si512(rk, load(o))));
        }
    }

    /// As [`last_into`], `out = src ^ keystream`.
    #[inline]
    fn last_from(k: &Key, out: &mut [u8; STRIDE], src: &[u8; STRIDE], s: &[__m512i; VECS]) {
        let rk = load(&k.rk4[ROUND_KEYS - 1]);
        let (out, _) = out.as_chunks_mut::<64>();
        let (src, _) = src.as_chunks::<64>();
        for ((o, i), s) in out.iter_mut().zip(src).zip(s) {
            store(o, _mm512_aesenclast_epi128(*s, _mm512_xor_si512(rk, load(i))));
        }
    }

    /// The stitched kernel, over whole strides (any number, none
    /// included). Each iteration runs the AES rounds of 16 counter blocks
    /// interleaved with the GHASH products of 16 ciphertext blocks, and
    /// every second iteration (or a last odd one) reduces: when sealing,
    /// the blocks of the stride written `LAG` (2) iterations before (the
    /// first two strides are only encrypted, the last two only hashed after
    /// the loop); when opening, those of the current stride, before it is
    /// overwritten. Returns the new accumulator.
    ///
    /// With `OOP`, the input is read from `src` (as many strides as
    /// `data`) and `data` is only written; without it `src` is ignored.
    #[allow(clippy::too_many_arguments)]
    fn crypt_strides<const SEAL: bool, const OOP: bool>(
        k: &Key,
        nb: __m128i,
        c: &mut u32,
        r1: &mut __m512i,
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
            let mut s = first_round::<VECS>(k, nb, c, r1);
            for r in 2..ROUND_KEYS - 1 {
                round(k, &mut s, r);
            }
            if OOP {
                last_from(k, &mut data[i], &src[i], &s);
            } else {
                last_into(k, &mut data[i], &s);
            }
        }
        // One stride: AES rounds 2..=14 of stride `$i` interleaved with
        // the GHASH products of its hashed stride, which take powers
        // `$off .. $off + 16`; `$first` starts the unreduced sums (and adds
        // the accumulator to the first block), `$last` reduces them.
        let mut sums = [_mm512_setzero_si512(); 3];
        macro_rules! stride {
            ($i:expr, $off:literal, $first:literal, $last:literal) => {{
                let i = $i;
                // An opaque copy of the key reference, so that the round
                // keys and powers are loaded inside the loop (as memory
                // operands) instead of being hoisted and spilled.
                let k = core::hint::black_box(k);
                ks::prefetch_ahead(if OOP { &src[i] } else { &data[i] });
                let hashed: &[u8; STRIDE] = if OOP && !SEAL {
                    &src[i]
                } else {
                    &data[if SEAL { i - LAG } else { i }]
                };
                let (h, _) = hashed.as_chunks::<64>();
                let mut s = first_round::<VECS>(k, nb, c, r1);
                if $first {
                    sums = [_mm512_setzero_si512(); 3];
                }
                macro_rules! step {
                    ($r:literal, $m:literal) => {
                        round(k, &mut s, $r);
                        let x = _mm512_shuffle_epi8(load(&h[$m]), bswap());
                        let x = if $first && $m == 0 { with_acc(x, acc) } else { x };
                        mul_add(&mut sums, x, load(quad(&k.pows, $off + 4 * $m)));
                    };
                }
                step!(2, 0);
                step!(3, 1);
                step!(4, 2);
                step!(5, 3);
                if $last {
                    acc = finish(&sums);
                }
                for r in 6..ROUND_KEYS - 1 {
                    round(k, &mut s, r);
                }
                // When opening, an opaque reference to the stride just
                // hashed, so that its blocks are loaded again as memory
                // operands rather than kept from the hashing loads.
                let out = &mut data[i];
                if OOP {
                    let from = &src[i];
                    last_from(k, out, if SEAL { from } else { core::hint::black_box(from) }, &s);
                } else {
                    last_into(k, if SEAL { out } else { core::hint::black_box(out) }, &s);
                }
            }};
        }
        let mut i = lag;
        while i + 1 < n {
            stride!(i, 0, true, false);
            stride!(i + 1, 16, false, true);
            i += 2;
        }
        if i < n {
            stride!(i, 16, true, true);
        }
        if SEAL {
            for d in &data[n - lag..] {
                acc = ghash_upto16(k, acc, d);
            }
        }
        acc
    }

    /// The last partial stride, 1 to 255 bytes in `R` = ⌈len/64⌉
    /// registers, loaded and stored with byte masks, hashed together with
    /// the length block `len` in one reduction. With `src` (as long as
    /// `tail`), the input is read from it and `tail` is only written.
    #[allow(clippy::too_many_arguments)]
    fn crypt_tail<const SEAL: bool, const R: usize>(
        k: &Key,
        nb: __m128i,
        c: &mut u32,
        r1: &mut __m512i,
        acc: __m128i,
        tail: &mut [u8],
        src: Option<&[u8]>,
        len: &[u8; 16],
    ) -> __m128i {
        let n = tail.len().div_ceil(16);
        let mut x = [_mm512_setzero_si512(); R];
        {
            let input: &[u8] = src.unwrap_or(tail);
            for (m, (x, chunk)) in x.iter_mut().zip(input.chunks(64)).enumerate() {
                debug_assert!(m < R);
                *x = load_part(chunk);
            }
        }
        // The length block is the last hashed (power K_1); its products
        // start the sums, in lane 0, off the data's critical path.
        let l = _mm_shuffle_epi8(ks::load(len), ks::bswap_mask());
        let k1 = ks::load(&k.pows[POWERS - 1]);
        let mut sums = [
            _mm512_zextsi128_si512(_mm_clmulepi64_si128::<0x00>(l, k1)),
            _mm512_zextsi128_si512(_mm_xor_si128(
                _mm_clmulepi64_si128::<0x01>(l, k1),
                _mm_clmulepi64_si128::<0x10>(l, k1),
            )),
            _mm512_zextsi128_si512(_mm_clmulepi64_si128::<0x11>(l, k1)),
        ];
        if !SEAL {
            hash_tail(k, &mut sums, &x, acc, n);
        }
        let mut s = first_round::<R>(k, nb, c, r1);
        for r in 2..ROUND_KEYS - 1 {
            round(k, &mut s, r);
        }
        let rk = load(&k.rk4[ROUND_KEYS - 1]);
        for (m, (x, s)) in x.iter_mut().zip(&s).enumerate() {
            let part = &mut tail[64 * m..];
            // As in `last_into`: the data XORed into the last round key.
            *x = _mm512_aesenclast_epi128(*s, _mm512_xor_si512(rk, *x));
            store_part(part, *x);
            // The ciphertext zero-padded, for hashing.
            *x = _mm512_maskz_mov_epi8(byte_mask(part.len()), *x);
        }
        if SEAL {
            hash_tail(k, &mut sums, &x, acc, n);
        }
        // The registers spill to the stack: wipe the tail's data and the
        // AES state (keystream before the last round) there, as the AVX2
        // kernel wipes its tail temporaries.
        x.zeroize();
        s.zeroize();
        finish(&sums)
    }

    /// Adds the products of the tail's `n` blocks (zero-padded, in
    /// `blocks`), the first plus `acc`, to the sums: block j takes
    /// `K_(n+1-j)`, at `pows[POWERS - 1 - n + j]` (the length block after
    /// them takes `K_1`).
    #[inline]
    fn hash_tail<const R: usize>(
        k: &Key,
        sums: &mut [__m512i; 3],
        blocks: &[__m512i; R],
        acc: __m128i,
        n: usize,
    ) {
        for (m, b) in blocks.iter().enumerate() {
            let y = _mm512_shuffle_epi8(*b, bswap());
            let y = if m == 0 { with_acc(y, acc) } else { y };
            mul_add(sums, y, load(quad(&k.pows, POWERS - 1 - n + 4 * m)));
        }
    }

    /// [`crypt_tail`] for the register count the tail's length needs.
    #[allow(clippy::too_many_arguments)]
    fn crypt_tail_any<const SEAL: bool>(
        k: &Key,
        nb: __m128i,
        c: &mut u32,
        r1: &mut __m512i,
        acc: __m128i,
        tail: &mut [u8],
        src: Option<&[u8]>,
        len: &[u8; 16],
    ) -> __m128i {
        match tail.len().div_ceil(64) {
            0 => ks::ghash_block(acc, len, &k.pows[POWERS - 1]),
            1 => crypt_tail::<SEAL, 1>(k, nb, c, r1, acc, tail, src, len),
            2 => crypt_tail::<SEAL, 2>(k, nb, c, r1, acc, tail, src, len),
            3 => crypt_tail::<SEAL, 3>(k, nb, c, r1, acc, tail, src, len),
            _ => crypt_tail::<SEAL, 4>(k, nb, c, r1, acc, tail, src, len),
        }
    }

    /// GCM with the first message block at counter `ctr0` (2 in GCM; other
    /// values only in tests of the 32-bit wrap). Returns the tag over `aad`
    /// and the ciphertext.
    ///
    /// In place, or, with `src` (exactly as long as `buf`), from `src` into
    /// `buf`; when opening, the ciphertext hashed is then `src`'s. A `src`
    /// of another length is ignored (in place).
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
        let nb = ks::load(&block);
        let mut mask = ks::encrypt_block(&k.rk, nb);
        let mut c = ctr0;
        let mut r1 = segment_round1(k, nb, c);

        let mut acc = ghash_padded(k, _mm_setzero_si128(), aad);
        let tail_at = buf.len() - buf.len() % STRIDE;
        let (body, tail) = buf.split_at_mut(tail_at);
        let (strides, _) = body.as_chunks_mut::<STRIDE>();
        acc = match src {
            Some(src) => {
                let (src_strides, _) = src[..tail_at].as_chunks::<STRIDE>();
                crypt_strides::<SEAL, true>(k, nb, &mut c, &mut r1, acc, strides, src_strides)
            }
            None => crypt_strides::<SEAL, false>(k, nb, &mut c, &mut r1, acc, strides, &[]),
        };
        let len = length_block(aad.len(), tail_at + tail.len());
        let src_tail = src.map(|s| &s[tail_at..]);
        acc = crypt_tail_any::<SEAL>(k, nb, &mut c, &mut r1, acc, tail, src_tail, &len);
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
            // SAFETY: `k` was made by `Key::new`, which takes a
            // `VaesClmulAvx512` witness: only `detect()` creates one.
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
    fn both_paths(key: &[u8; 32], cpu: VaesClmulAvx512) -> [Pooled; 2] {
        [0, usize::MAX].map(|from| {
            let mut k = Pooled::new(key, cpu);
            k.first.from = from;
            k
        })
    }

    fn cpu() -> Option<VaesClmulAvx512> {
        let cpu = VaesClmulAvx512::detect();
        if cpu.is_none() {
            eprintln!("skipped: no VAES/VPCLMULQDQ with AVX-512F/BW/VL on this CPU");
        }
        cpu
    }

    #[test]
    fn counter_wraps_at_2_pow_32() {
        let Some(cpu) = cpu() else { return };
        for k in both_paths(&core::array::from_fn(|i| i as u8 * 7 + 1), cpu) {
            // 0 to 18 strides, odd and even (pairs of strides share one
            // reduction), tails of every register count.
            let lens = [1, 17, 64, 65, 129, 255, 256, 600, 1024, 1279, 4 * 1024 + 5];
            ts::counter_wraps(&*kernel(&k), &lens);
        }
    }

    #[test]
    fn every_tail_0_to_256_blocks() {
        let Some(cpu) = cpu() else { return };
        let key = ts::test_keys()[0];
        for k in both_paths(&key, cpu) {
            ts::every_block_count(&*kernel(&k), &key);
        }
    }

    #[test]
    fn hash_powers_match_the_scalar_ones() {
        let Some(cpu) = cpu() else { return };
        for key in ts::test_keys() {
            let k = Pooled::new(&key, cpu);
            let mut want = [[0u8; 16]; POWERS];
            // SAFETY: `cpu` is a `VaesClmulAvx512` witness from `detect()`;
            // its features include those of `hash_powers` (AES-NI, CLMUL,
            // SSSE3, SSE4.1).
            unsafe { ks::hash_powers(&k.rk, &mut want) };
            want.reverse();
            assert_eq!(k.pows[..POWERS], want);
            assert_eq!(k.pows[POWERS..], [[0u8; 16]; 4]);
        }
    }

    #[test]
    fn round1_table_is_the_low_bytes_contribution() {
        let Some(cpu) = cpu() else { return };
        for key in ts::test_keys() {
            let k = Pooled::new(&key, cpu);
            let direct = |b: &[u8; 16]| {
                let mut out = [0u8; 16];
                // SAFETY: `cpu` is a `VaesClmulAvx512` witness from
                // `detect()` (AES-NI among its features; SSE2 is baseline).
                ks::store(&mut out, unsafe {
                    let x = _mm_xor_si128(ks::load(b), ks::load(&k.rk[0]));
                    _mm_aesenc_si128(x, ks::load(&k.rk[1]))
                });
                out
            };
            // SAFETY: `cpu` is a `VaesClmulAvx512` witness from `detect()`, which
            // checked every feature `build_round1` is compiled for.
            let table = unsafe { build_round1(&k) };
            let first = |t: u8| table.0[usize::from(t)];
            ts::round1_table(key[15], direct, first);
            assert_eq!(table.0[LOW_BYTES..], table.0[..BLOCKS]);
            // A long message installs the table; a short one does not.
            assert!(k.first.get().is_none());
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
        let Some(cpu) = cpu() else { return };
        for (key, k) in ts::test_keys()
            .into_iter()
            .flat_map(|key| both_paths(&key, cpu).map(|k| (key, k)))
        {
            // 1 to 40 strides (odd and even counts in the loop, sealing
            // and opening; 40 cross two or three 256-block segments), each
            // with a tail (one of 13 blocks).
            let lens = [
                256 + 5,
                2 * 256 + 64,
                3 * 256 + 1,
                4 * 256 + 130,
                5 * 256 + 9,
                17 * 256 + 200,
                40 * 256 + 3,
            ];
            ts::every_low_byte(&*kernel(&k), &key, &lens);
        }
    }
}
