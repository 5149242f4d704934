//! AES-256-GCM on 128-bit registers with AES-NI and PCLMULQDQ, for CPUs
//! without VAES: the design of [`super::vaes_avx2`] one block per register.
//!
//! The message is processed in strides of 8 blocks. In each stride the AES
//! rounds of 8 counter blocks are interleaved with the GHASH of 8 other
//! blocks (when sealing, the ciphertext written two strides earlier; when
//! opening, the current stride's ciphertext, before it is overwritten),
//! each multiplied by its own power of the hash key with three carry-less
//! multiplies (Karatsuba), summed unreduced and reduced once per pair of
//! strides (powers `K_16 … K_1`). Round 1 comes from a per-key table of
//! what the counter's low byte contributes to it (see [`first_round`]), so
//! a block's whitening, counter arithmetic and first `aesenc` are one XOR:
//! the vector ports, not the AES unit, bound this kernel. Counters are
//! 32-bit, so they wrap as inc32 of SP 800-38D requires.
//!
//! Nothing branches on or indexes memory by secret data (the round-1
//! table is indexed by the counter, which is public).

use core::arch::x86_64::*;

use zeroize::Zeroize;

use super::AesNiClmul;
use super::key_schedule::{self as ks, ROUND_KEYS, load, store};
use super::prefix;
use crate::cipher::{NONCE_LEN, TAG_LEN, length_block};

/// Blocks per stride.
const BLOCKS: usize = 8;
/// Bytes per stride.
const STRIDE: usize = 16 * BLOCKS;
/// When sealing, the stride hashed in each iteration is the one written
/// `LAG` iterations earlier: with the one just before it, the hashing
/// loads waited on the stores of the previous iteration's last round and
/// the scheduler filled with hashing work it could not start.
const LAG: usize = 2;
/// Hash-key powers kept: two strides' worth, so that the main loop reduces
/// once per pair of strides.
const POWERS: usize = 2 * BLOCKS;
/// Values of the counter's low byte: the first-round table's length.
const LOW_BYTES: usize = 256;

/// A keyed AES-NI kernel: round keys and hash-key powers, zeroized on drop.
pub(crate) struct Key {
    /// Proof that the CPU has the target features of every function here.
    cpu: AesNiClmul,
    /// Round keys. The tables hold `__m128i` (16-byte aligned) so that the
    /// legacy-SSE `aesenc`/`pclmulqdq` can take them as memory operands.
    rk: [__m128i; ROUND_KEYS],
    /// `pows[i] = K_(16-i)`: the j-th of n blocks (from 0) takes `pows[16 - n + j]`.
    pows: [__m128i; POWERS],
    /// `lo ^ hi` of each entry of `pows`, in both halves (Karatsuba).
    mids: [__m128i; POWERS],
    /// `first[t]`: what a low counter byte of `t` adds to the first AES
    /// round of a counter block whose low byte is 0 (see [`first_round`]).
    /// Indexed only by the counter, which is public. Its entries depend on
    /// one key byte (`rk0[15]`, the key's byte 15), so it is as secret as
    /// the round keys and wiped when dropped. It costs 256 `aesenc` and
    /// 4 KiB per key (setting up, using once and dropping a key went from
    /// about 0.25 to 0.58 µs), so it is built only by the first message of
    /// at least [`ks::ROUND1_FROM`] bytes ([`build_round1`]).
    first: ks::LazyRound1<LOW_BYTES>,
}

impl Drop for Key {
    fn drop(&mut self) {
        self.rk.zeroize();
        self.pows.zeroize();
        self.mids.zeroize();
    }
}

impl Key {
    pub(crate) fn new(key: &[u8; 32], cpu: AesNiClmul) -> Box<Self> {
        let zero = load(&[0; 16]);
        let mut k = Box::new(Key {
            cpu,
            rk: [zero; ROUND_KEYS],
            pows: [zero; POWERS],
            mids: [zero; POWERS],
            first: ks::LazyRound1::new(),
        });
        // SAFETY: `cpu` is an `AesNiClmul` witness, which only `detect()`
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
        let _cpu: AesNiClmul = self.cpu;
        // SAFETY: `_cpu` is an `AesNiClmul` witness (see `new`).
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
        let _cpu: AesNiClmul = self.cpu;
        // SAFETY: `_cpu` is an `AesNiClmul` witness (see `new`).
        unsafe { crypt::<false>(self, nonce, 2, aad, buf, src) }
    }
}

aesni_clmul_features! {
    fn init(k: &mut Key, key: &[u8; 32]) {
        let mut rk = [[0u8; 16]; ROUND_KEYS];
        ks::expand_key(key, &mut rk);
        for (out, rk) in k.rk.iter_mut().zip(&rk) {
            *out = load(rk);
        }
        let mut powers = [[0u8; 16]; POWERS];
        ks::hash_powers(&rk, &mut powers);
        for (i, p) in powers.iter().rev().enumerate() {
            let v = load(p);
            k.pows[i] = v;
            k.mids[i] = _mm_xor_si128(v, _mm_shuffle_epi32::<0x4e>(v));
        }
        powers.zeroize();
        rk.zeroize();
    }

    /// The round-1 table.
    fn build_round1(k: &Key) -> Box<ks::Round1<LOW_BYTES>> {
        let mut table = ks::Round1::<LOW_BYTES>::zeroed();
        // Round 1 is `aesenc(x, rk1) = MixColumns(ShiftRows(SubBytes(x))) ^
        // rk1`, where only SubBytes is not linear, and it acts on each byte
        // alone. Counter blocks that differ only in their last byte (the
        // counter's low byte) therefore differ after round 1 by a value
        // that depends on that byte alone: whitened with rk0, the byte is
        // `t ^ rk0[15]`, and the difference from `t = 0` is
        // `aesenc(rk0 ^ t·e15, 0) ^ aesenc(rk0, 0)` (every other byte of
        // rk0 passes through SubBytes alike on both sides and cancels).
        let (zero, rk0) = (_mm_setzero_si128(), k.rk[0]);
        let base = _mm_aesenc_si128(rk0, zero);
        // `x = rk0 ^ t·e15`, stepping t by adding 1 to byte 15 alone.
        let (mut x, step) = (rk0, low_byte(1));
        let mut t = zero;
        for out in table.0.iter_mut() {
            store(out, _mm_xor_si128(_mm_aesenc_si128(x, zero), base));
            t = _mm_add_epi8(t, step);
            x = _mm_xor_si128(rk0, t);
        }
        table
    }

    /// The block holding `t` as its last byte (the low byte of the
    /// counter, in the block's own order) and zero elsewhere.
    #[inline]
    fn low_byte(t: u8) -> __m128i {
        _mm_insert_epi8::<15>(_mm_setzero_si128(), i32::from(t))
    }

    /// Round 1 of the counter block in `ctr`'s 256-block segment whose low
    /// byte is 0: `r1` of [`first_round`].
    #[inline]
    fn segment_round1(k: &Key, ctr: __m128i) -> __m128i {
        let c = _mm_andnot_si128(_mm_cvtsi32_si128(0xff), ctr);
        let x = _mm_xor_si128(_mm_shuffle_epi8(c, ks::bswap_mask()), k.rk[0]);
        _mm_aesenc_si128(x, k.rk[1])
    }

    /// The next stride's 8 counter blocks after AES round 1 (whitening
    /// included), for the counter block `ctr` (byte-reversed) with its
    /// counter replaced by `c`; advances `c` by 8, and updates `r1` (round
    /// 1 of the current segment's block with low byte 0) when the stride
    /// ends its segment. The counter is carried in a general register, so
    /// the table loads that start a stride's AES rounds wait on nothing.
    ///
    /// When the 8 low bytes `t0 .. t0 + 8` do not wrap (31 strides in 32),
    /// round 1 of block `j` is `r1 ^ first[t0 + j]`: one XOR with a table
    /// entry instead of the counter arithmetic, the whitening XOR and an
    /// `aesenc`, as the vector ports are this kernel's bottleneck. The
    /// branch and the table index are the counter, which is public. A key
    /// without its table (short messages) takes the counter path.
    #[inline]
    fn first_round(k: &Key, ctr: __m128i, c: &mut u32, r1: &mut __m128i) -> [__m128i; BLOCKS] {
        let t0 = (*c & 0xff) as usize;
        let s = match k.first.get().and_then(|f| f.get(t0..t0 + BLOCKS)) {
            Some(first) => {
                let mut s = [*r1; BLOCKS];
                for (s, f) in s.iter_mut().zip(first) {
                    *s = _mm_xor_si128(*s, load(f));
                }
                s
            }
            None => {
                let mut ctr = with_counter(ctr, *c);
                let mut s = counters(k, &mut ctr);
                round(k, &mut s, 1);
                s
            }
        };
        *c = c.wrapping_add(BLOCKS as u32);
        if t0 + BLOCKS >= LOW_BYTES {
            *r1 = segment_round1(k, with_counter(ctr, *c));
        }
        s
    }

    /// The byte-reversed counter block `ctr` with its counter set to `c`.
    #[inline]
    fn with_counter(ctr: __m128i, c: u32) -> __m128i {
        _mm_insert_epi32::<0>(ctr, c as i32)
    }

    /// The 8 counter blocks of the next stride, whitened with round key 0;
    /// advances `ctr` (the byte-reversed counter block).
    ///
    /// When the low byte of the counter does not wrap within the stride (31
    /// strides in 32), the blocks are made by adding to that byte in place,
    /// in the block's own byte order (one byte swap per stride instead of
    /// one per block: the vector ports are this kernel's bottleneck). The
    /// branch is on the counter, which is public (nonce and position).
    #[inline]
    fn counters(k: &Key, ctr: &mut __m128i) -> [__m128i; BLOCKS] {
        let (bswap, rk0) = (ks::bswap_mask(), k.rk[0]);
        let mut s = [_mm_setzero_si128(); BLOCKS];
        let low_byte = _mm_cvtsi128_si32(*ctr) as u32 & 0xff;
        if low_byte < 256 - BLOCKS as u32 {
            let base = _mm_shuffle_epi8(*ctr, bswap);
            for (j, s) in s.iter_mut().enumerate() {
                let c = _mm_add_epi32(base, _mm_set_epi32((j as i32) << 24, 0, 0, 0));
                *s = _mm_xor_si128(c, rk0);
            }
        } else {
            for (j, s) in s.iter_mut().enumerate() {
                let c = _mm_add_epi32(*ctr, _mm_set_epi32(0, 0, 0, j as i32));
                *s = _mm_xor_si128(_mm_shuffle_epi8(c, bswap), rk0);
            }
        }
        *ctr = _mm_add_epi32(*ctr, _mm_set_epi32(0, 0, 0, BLOCKS as i32));
        s
    }

    #[inline]
    fn round(k: &Key, s: &mut [__m128i; BLOCKS], r: usize) {
        let rk = k.rk[r];
        for s in s.iter_mut() {
            *s = _mm_aesenc_si128(*s, rk);
        }
    }

    /// Encrypts one block.
    #[inline]
    fn encrypt_block(k: &Key, block: __m128i) -> __m128i {
        let mut b = _mm_xor_si128(block, k.rk[0]);
        for rk in &k.rk[1..ROUND_KEYS - 1] {
            b = _mm_aesenc_si128(b, *rk);
        }
        _mm_aesenclast_si128(b, k.rk[ROUND_KEYS - 1])
    }

    /// Keystream for the next 8 counter blocks.
    #[inline]
    fn keystream(k: &Key, ctr: &mut __m128i) -> [__m128i; BLOCKS] {
        let mut s = counters(k, ctr);
        for r in 1..ROUND_KEYS - 1 {
            round(k, &mut s, r);
        }
        last_round(k, &mut s);
        s
    }

    #[inline]
    fn last_round(k: &Key, s: &mut [__m128i; BLOCKS]) {
        let rk = k.rk[ROUND_KEYS - 1];
        for s in s.iter_mut() {
            *s = _mm_aesenclast_si128(*s, rk);
        }
    }

    /// Adds the products of block `x` (as loaded) with power index `i` to
    /// the unreduced sums.
    #[inline]
    fn mul_add(k: &Key, sums: &mut [__m128i; 3], x: __m128i, i: usize) {
        let x = _mm_shuffle_epi8(x, ks::bswap_mask());
        let (p, m) = (k.pows[i], k.mids[i]);
        let xm = _mm_xor_si128(x, _mm_shuffle_epi32::<0x4e>(x));
        sums[0] = _mm_xor_si128(sums[0], _mm_clmulepi64_si128::<0x00>(x, p));
        sums[1] = _mm_xor_si128(sums[1], _mm_clmulepi64_si128::<0x00>(xm, m));
        sums[2] = _mm_xor_si128(sums[2], _mm_clmulepi64_si128::<0x11>(x, p));
    }

    #[inline]
    fn finish(sums: &[__m128i; 3]) -> __m128i {
        let [lo, mi, hi] = *sums;
        ks::reduce(lo, _mm_xor_si128(mi, _mm_xor_si128(lo, hi)), hi)
    }

    /// Hashes the first `n` blocks of `data` (n <= 8).
    fn ghash_upto8(k: &Key, acc: __m128i, data: &[u8; STRIDE], n: usize) -> __m128i {
        if n == 0 {
            return acc;
        }
        let (blocks, _) = data.as_chunks::<16>();
        let acc = _mm_shuffle_epi8(acc, ks::bswap_mask());
        let mut sums = [_mm_setzero_si128(); 3];
        for (j, b) in blocks.iter().take(n).enumerate() {
            let x = load(b);
            let x = if j == 0 { _mm_xor_si128(x, acc) } else { x };
            mul_add(k, &mut sums, x, POWERS - n + j);
        }
        finish(&sums)
    }

    /// Hashes `data`, zero-padded to whole blocks.
    fn ghash_padded(k: &Key, mut acc: __m128i, data: &[u8]) -> __m128i {
        let (strides, tail) = data.as_chunks::<STRIDE>();
        for s in strides {
            acc = ghash_upto8(k, acc, s, BLOCKS);
        }
        if !tail.is_empty() {
            let mut tmp = [0u8; STRIDE];
            tmp[..tail.len()].copy_from_slice(tail);
            acc = ghash_upto8(k, acc, &tmp, tail.len().div_ceil(16));
        }
        acc
    }

    #[inline]
    fn xor_into(out: &mut [u8; STRIDE], ks: &[__m128i; BLOCKS]) {
        let (out, _) = out.as_chunks_mut::<16>();
        for (o, ks) in out.iter_mut().zip(ks) {
            store(o, _mm_xor_si128(load(o), *ks));
        }
    }

    /// `out = src ^ ks`.
    #[inline]
    fn xor_from(out: &mut [u8; STRIDE], src: &[u8; STRIDE], ks: &[__m128i; BLOCKS]) {
        let (out, _) = out.as_chunks_mut::<16>();
        let (src, _) = src.as_chunks::<16>();
        for ((o, i), ks) in out.iter_mut().zip(src).zip(ks) {
            store(o, _mm_xor_si128(load(i), *ks));
        }
    }

    /// The stitched kernel, over whole strides (any number, none included).
    /// Each iteration runs the AES rounds of 8 counter blocks interleaved
    /// with the GHASH products of 8 ciphertext blocks, and every second
    /// iteration (or a last odd one) reduces: when sealing, the blocks of
    /// the stride written `LAG` (2) iterations before (the first two
    /// strides are only encrypted, the last two only hashed after the
    /// loop); when opening, those of the current stride, before it is
    /// overwritten. Returns the new accumulator.
    ///
    /// With `OOP` (out of place), the input is read from `src` (as many
    /// strides as `data`) and `data` is only written: when sealing, `data`
    /// is hashed after it is written; when opening, `src` is hashed.
    /// Without it `src` is ignored. A const parameter, so that the in-place
    /// loop compiles exactly as it would without the out-of-place one.
    fn crypt_strides<const SEAL: bool, const OOP: bool>(
        k: &Key,
        ctr: &mut __m128i,
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
        let mut c = _mm_cvtsi128_si32(*ctr) as u32;
        // One stride: AES rounds 2..=14 of stride `$i` interleaved with the
        // GHASH products of its hashed stride, which take powers `$off ..
        // $off + 8`; `$first` starts the unreduced sums (and adds the
        // accumulator to the first block), `$last` reduces them into `acc`.
        let mut sums = [_mm_setzero_si128(); 3];
        macro_rules! stride {
            ($i:expr, $off:literal, $first:literal, $last:literal) => {{
                let i = $i;
                // An opaque copy of the key reference, so that the round
                // keys and powers are loaded inside the loop (as memory
                // operands) instead of being hoisted into registers and
                // spilled.
                let k = core::hint::black_box(k);
                ks::prefetch_ahead(if OOP { &src[i] } else { &data[i] });
                let hashed: &[u8; STRIDE] = if OOP && !SEAL {
                    &src[i]
                } else {
                    &data[if SEAL { i - LAG } else { i }]
                };
                let (h, _) = hashed.as_chunks::<16>();
                let mut s = first_round(k, *ctr, &mut c, &mut r1);
                if $first {
                    sums = [_mm_setzero_si128(); 3];
                }
                let a = _mm_shuffle_epi8(acc, ks::bswap_mask());
                macro_rules! step {
                    ($r:literal, $j:literal) => {
                        round(k, &mut s, $r);
                        let x = load(&h[$j]);
                        let x = if $first && $j == 0 { _mm_xor_si128(x, a) } else { x };
                        mul_add(k, &mut sums, x, $off + $j);
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
                if $last {
                    acc = finish(&sums);
                }
                for r in 10..ROUND_KEYS - 1 {
                    round(k, &mut s, r);
                }
                last_round(k, &mut s);
                // When opening, an opaque reference to the stride just
                // hashed, so that its blocks are loaded again as `pxor`
                // memory operands rather than kept from the hashing loads
                // and spilled.
                let out = &mut data[i];
                if OOP {
                    let from = &src[i];
                    xor_from(out, if SEAL { from } else { core::hint::black_box(from) }, &s);
                } else {
                    xor_into(if SEAL { out } else { core::hint::black_box(out) }, &s);
                }
            }};
        }
        // Pairs of strides share one reduction (powers 16..9, then 8..1);
        // an odd last stride is reduced alone (powers 8..1).
        let mut i = lag;
        while i + 1 < n {
            stride!(i, 0, true, false);
            stride!(i + 1, 8, false, true);
            i += 2;
        }
        if i < n {
            stride!(i, 8, true, true);
        }
        *ctr = with_counter(*ctr, c);
        if SEAL {
            for d in &data[n - lag..] {
                acc = ghash_upto8(k, acc, d, BLOCKS);
            }
        }
        acc
    }

    /// The last partial stride (1 to 127 bytes), through a zero-padded copy
    /// on the stack. With `src` (as long as `tail`), the input is read from
    /// it and `tail` is only written.
    fn crypt_tail<const SEAL: bool>(
        k: &Key,
        ctr: &mut __m128i,
        mut acc: __m128i,
        tail: &mut [u8],
        src: Option<&[u8]>,
    ) -> __m128i {
        let n = tail.len().div_ceil(16);
        let mut tmp = [0u8; STRIDE];
        tmp[..tail.len()].copy_from_slice(src.unwrap_or(tail));
        if !SEAL {
            acc = ghash_upto8(k, acc, &tmp, n);
        }
        let mut ks = keystream(k, ctr);
        let (blocks, _) = tmp.as_chunks_mut::<16>();
        for (b, ks) in blocks.iter_mut().zip(&ks).take(n) {
            store(b, _mm_xor_si128(load(b), *ks));
        }
        ks.zeroize();
        tail.copy_from_slice(&tmp[..tail.len()]);
        if SEAL {
            tmp[tail.len()..].fill(0);
            acc = ghash_upto8(k, acc, &tmp, n);
        }
        ks::wipe(&mut tmp);
        acc
    }

    /// GCM with the first message block at counter `ctr0` (2 in GCM; other
    /// values only in tests of the 32-bit wrap).
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
        let mut mask = encrypt_block(k, load(&block));
        block[12..].copy_from_slice(&ctr0.to_be_bytes());
        let mut ctr = _mm_shuffle_epi8(load(&block), ks::bswap_mask());

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
        if tail_at < buf.len() {
            let src_tail = src.map(|s| &s[tail_at..]);
            acc = crypt_tail::<SEAL>(k, &mut ctr, acc, &mut buf[tail_at..], src_tail);
        }
        let len = _mm_shuffle_epi8(load(&len), ks::bswap_mask());
        acc = ks::dot(_mm_xor_si128(acc, len), k.pows[POWERS - 1]);
        let s = _mm_shuffle_epi8(acc, ks::bswap_mask());
        let mut tag = [0u8; TAG_LEN];
        store(&mut tag, _mm_xor_si128(s, mask));
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
            // `AesNiClmul` witness: only `detect()` creates one.
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
    fn both_paths(key: &[u8; 32], cpu: AesNiClmul) -> [Box<Key>; 2] {
        [0, usize::MAX].map(|from| {
            let mut k = Key::new(key, cpu);
            k.first.from = from;
            k
        })
    }

    #[test]
    fn counter_wraps_at_2_pow_32() {
        let Some(cpu) = AesNiClmul::detect() else {
            eprintln!("skipped: no AES-NI/PCLMULQDQ on this CPU");
            return;
        };
        for k in both_paths(&core::array::from_fn(|i| i as u8 * 7 + 1), cpu) {
            // Stride counts 0 to 32 (128-byte strides), odd and even, so
            // that the pairing of strides for one reduction ends both ways,
            // sealing (two strides fewer in the loop) and opening.
            let lens = [1, 17, 255, 256, 384, 600, 647, 1024, 1252, 4 * 1024 + 5];
            ts::counter_wraps(&*kernel(&k), &lens);
        }
    }

    #[test]
    fn every_tail_0_to_256_blocks() {
        let Some(cpu) = AesNiClmul::detect() else {
            eprintln!("skipped: no AES-NI/PCLMULQDQ on this CPU");
            return;
        };
        let key = ts::test_keys()[0];
        for k in both_paths(&key, cpu) {
            ts::every_block_count(&*kernel(&k), &key);
        }
    }

    #[test]
    fn round1_table_is_the_low_bytes_contribution() {
        let Some(cpu) = AesNiClmul::detect() else {
            eprintln!("skipped: no AES-NI/PCLMULQDQ on this CPU");
            return;
        };
        for key in ts::test_keys() {
            let k = Key::new(&key, cpu);
            let direct = |b: &[u8; 16]| {
                let mut out = [0u8; 16];
                // SAFETY: `cpu` is an `AesNiClmul` witness from `detect()`
                // (AES-NI; SSE2 is baseline).
                store(&mut out, unsafe {
                    _mm_aesenc_si128(_mm_xor_si128(load(b), k.rk[0]), k.rk[1])
                });
                out
            };
            // SAFETY: `cpu` is an `AesNiClmul` witness from `detect()`, which
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
        let Some(cpu) = AesNiClmul::detect() else {
            eprintln!("skipped: no AES-NI/PCLMULQDQ on this CPU");
            return;
        };
        for (key, k) in ts::test_keys()
            .into_iter()
            .flat_map(|key| both_paths(&key, cpu).map(|k| (key, k)))
        {
            // 3, 5, 33 and 70 strides (70 cross two or three 256-block
            // segments), each with a tail (one of 7 blocks).
            let lens = [3 * 128 + 1, 5 * 128 + 9, 33 * 128 + 100, 70 * 128 + 3];
            ts::every_low_byte(&*kernel(&k), &key, &lens);
        }
    }
}
