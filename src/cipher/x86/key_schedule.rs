//! What both x86 kernels compute once per key, and the 128-bit GHASH
//! arithmetic they share: the AES-256 round keys, the hash key H = E(K, 0^128)
//! and its powers.
//!
//! GHASH is computed in the byte-reversed domain of RFC 8452, Appendix A:
//! with every block byte-reversed, GHASH(H; X) is the byte reversal of
//! POLYVAL(H·x; X), where POLYVAL multiplies with `dot(a, b) = a·b·x^-128`
//! modulo `P = x^128 + x^127 + x^126 + x^121 + 1` and a register's bit i is
//! the coefficient of x^i. No bit reflection is needed, carry-less products
//! of whole registers are the polynomial products, and the `x^-128` is the
//! Montgomery-style reduction in [`reduce`]. The powers `K_1 = H·x` and
//! `K_(i+1) = dot(K_i, K_1)` let n blocks be hashed with n independent
//! products summed unreduced and reduced once:
//! `S' = dot(S ^ X_1, K_n) ^ dot(X_2, K_(n-1)) ^ … ^ dot(X_n, K_1)`.

use core::arch::x86_64::*;

use zeroize::Zeroize;

/// Round keys of AES-256: the initial whitening key and 14 rounds.
pub(super) const ROUND_KEYS: usize = 15;

/// The GHASH reduction constant `x^63 + x^62 + x^57` in the low half: the
/// top of P with its x^128 term dropped, divided by x^64.
pub(super) const POLY: i64 = 0xc200_0000_0000_0000_u64 as i64;

/// Loads 16 bytes; SSE2 is part of x86-64, so this needs no witness.
#[inline]
pub(super) fn load(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes and `loadu` has no alignment
    // requirement; SSE2 is baseline on x86-64.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

/// Stores 16 bytes; SSE2 is part of x86-64, so this needs no witness.
#[inline]
pub(super) fn store(b: &mut [u8; 16], v: __m128i) {
    // SAFETY: `b` is 16 writable bytes and `storeu` has no alignment
    // requirement; SSE2 is baseline on x86-64.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), v) }
}

/// How far ahead of the stride being processed the kernels prefetch their
/// input. Measured on the 256 MiB body seal (input and output far out of
/// cache, `cargo bench --bench ratios`): 2 KiB ahead raised one thread from
/// 4.9 to 5.7–6.0 GB/s and two from 9.0–9.2 to 10.6–11.3 GB/s, 1.01–1.05×
/// `copy_from_slice` of the same bytes (0.85–0.87× before); the hardware
/// prefetchers alone leave the kernel waiting on memory. In cache the
/// hint costs a load-port slot per line: the in-cache ratios did not move.
const PREFETCH_AHEAD: usize = 2048;

/// Hints that the `N` bytes at `PREFETCH_AHEAD` past `stride` (one
/// kernel stride) will be read soon: one prefetch per 64-byte line.
#[inline]
pub(super) fn prefetch_ahead<const N: usize>(stride: &[u8; N]) {
    let ahead = stride.as_ptr().wrapping_add(PREFETCH_AHEAD);
    for line in (0..N).step_by(64) {
        // SAFETY: SSE is baseline on x86-64. A prefetch is a hint: it
        // reads nothing the program can observe and never faults, so an
        // address past the end of the buffer (the last strides of a
        // message) is harmless; `wrapping_add` keeps the pointer
        // arithmetic defined for any address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast()) };
    }
}

/// Overwrites a stack buffer that held keystream or plaintext, with writes
/// the compiler may not drop (16 bytes at a time, unlike a byte-wise wipe).
pub(super) fn wipe<const N: usize>(buf: &mut [u8; N]) {
    wipe_slice(buf);
}

/// [`wipe`] for a slice: key tables on drop (a byte-wise `zeroize` of a
/// kernel's 4 KiB round-1 table took about 1.4 µs, longer than setting up
/// the key). The aligned middle is written as vectors: a volatile write of
/// a `[u8; 16]` went through a stack copy (three moves per 16 bytes), and
/// wiping a key on drop took a sixth of setting one up.
pub(super) fn wipe_slice(buf: &mut [u8]) {
    // SAFETY: every 16 bytes are a valid `__m128i` and every byte a valid
    // `u8`, so viewing the aligned middle as vectors is sound.
    let (head, middle, tail) = unsafe { buf.align_to_mut::<__m128i>() };
    for v in middle {
        // SAFETY: `v` is a unique, aligned reference to a `__m128i`; SSE2
        // (the zero vector) is baseline on x86-64.
        unsafe { core::ptr::write_volatile(v, _mm_setzero_si128()) };
    }
    head.zeroize();
    tail.zeroize();
}

aesni_clmul_features! {
    /// The shuffle that reverses the 16 bytes of a block.
    #[inline]
    pub(super) fn bswap_mask() -> __m128i {
        _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    }

    /// One step of the key expansion: a prefix XOR of the four words of
    /// `prev`, XORed with the broadcast word `t` from AESKEYGENASSIST.
    #[inline]
    fn expand_step(prev: __m128i, t: __m128i) -> __m128i {
        let a = _mm_xor_si128(prev, _mm_slli_si128::<4>(prev));
        let a = _mm_xor_si128(a, _mm_slli_si128::<4>(a));
        let a = _mm_xor_si128(a, _mm_slli_si128::<4>(a));
        _mm_xor_si128(a, t)
    }

    /// AES-256 key expansion (FIPS 197, §5.2) into `rk`.
    pub(super) fn expand_key(key: &[u8; 32], rk: &mut [[u8; 16]; ROUND_KEYS]) {
        let (k0, k1) = key.split_at(16);
        let mut w = [_mm_setzero_si128(); ROUND_KEYS];
        w[0] = load(k0.try_into().expect("16 bytes"));
        w[1] = load(k1.try_into().expect("16 bytes"));
        // Even round keys: SubWord(RotWord(last word)) ^ rcon (dword 3 of
        // AESKEYGENASSIST); odd ones: SubWord(last word) (dword 2).
        macro_rules! even {
            ($i:literal, $rcon:literal) => {
                w[$i] = expand_step(
                    w[$i - 2],
                    _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(w[$i - 1])),
                );
            };
        }
        macro_rules! odd {
            ($i:literal) => {
                w[$i] = expand_step(
                    w[$i - 2],
                    _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>(w[$i - 1])),
                );
            };
        }
        even!(2, 0x01);
        odd!(3);
        even!(4, 0x02);
        odd!(5);
        even!(6, 0x04);
        odd!(7);
        even!(8, 0x08);
        odd!(9);
        even!(10, 0x10);
        odd!(11);
        even!(12, 0x20);
        odd!(13);
        even!(14, 0x40);
        for (out, v) in rk.iter_mut().zip(w) {
            store(out, v);
        }
        w.zeroize();
    }

    /// Encrypts one block with the expanded key.
    #[inline]
    pub(super) fn encrypt_block(rk: &[[u8; 16]; ROUND_KEYS], block: __m128i) -> __m128i {
        let mut b = _mm_xor_si128(block, load(&rk[0]));
        for k in &rk[1..ROUND_KEYS - 1] {
            b = _mm_aesenc_si128(b, load(k));
        }
        _mm_aesenclast_si128(b, load(&rk[ROUND_KEYS - 1]))
    }

    /// `lo + mi·x^64 + hi·x^128`, times x^-128, modulo P: two folds, each
    /// adding the multiple of P that clears the low 64 bits and dropping them.
    #[inline]
    pub(super) fn reduce(lo: __m128i, mi: __m128i, hi: __m128i) -> __m128i {
        let poly = _mm_set_epi64x(0, POLY);
        let mi = _mm_xor_si128(mi, _mm_shuffle_epi32::<0x4e>(lo));
        let mi = _mm_xor_si128(mi, _mm_clmulepi64_si128::<0x00>(lo, poly));
        let hi = _mm_xor_si128(hi, _mm_shuffle_epi32::<0x4e>(mi));
        _mm_xor_si128(hi, _mm_clmulepi64_si128::<0x00>(mi, poly))
    }

    /// `dot(a, b) = a·b·x^-128 mod P`.
    #[inline]
    pub(super) fn dot(a: __m128i, b: __m128i) -> __m128i {
        let lo = _mm_clmulepi64_si128::<0x00>(a, b);
        let hi = _mm_clmulepi64_si128::<0x11>(a, b);
        let mi = _mm_xor_si128(
            _mm_clmulepi64_si128::<0x01>(a, b),
            _mm_clmulepi64_si128::<0x10>(a, b),
        );
        reduce(lo, mi, hi)
    }

    /// The hash-key powers `K_1 ..= K_N` (index i holds `K_(i+1)`), from the
    /// expanded AES key.
    pub(super) fn hash_powers<const N: usize>(
        rk: &[[u8; 16]; ROUND_KEYS],
        out: &mut [[u8; 16]; N],
    ) {
        let mut h = [0u8; 16];
        store(&mut h, encrypt_block(rk, _mm_setzero_si128()));
        // K_1 = byte-reversed H times x, modulo P (branch-free).
        let v = u128::from_be_bytes(h);
        let carry = 0u128.wrapping_sub(v >> 127);
        let mut k1 = ((v << 1) ^ (carry & 0xc200_0000_0000_0000_0000_0000_0000_0001)).to_le_bytes();
        let k = load(&k1);
        let mut p = k;
        for o in out.iter_mut() {
            store(o, p);
            p = dot(p, k);
        }
        h.zeroize();
        k1.zeroize();
    }

    /// Hashes one block: `dot(acc ^ X, K_1)`, with X byte-reversed here.
    #[inline]
    pub(super) fn ghash_block(acc: __m128i, block: &[u8; 16], k1: &[u8; 16]) -> __m128i {
        let x = _mm_shuffle_epi8(load(block), bswap_mask());
        dot(_mm_xor_si128(acc, x), load(k1))
    }
}

/// Shortest message for which a kernel builds its round-1 table, if the
/// key has none yet. Below it, round 1 is computed from the counter blocks
/// (a few vector µops more per register, next to 13 AES rounds): building
/// the table costs 256 `aesenc`, 4 KiB to fill and to wipe, which a short
/// message never earns back, and most keys are used once on short inputs
/// (a key wrap of 32 bytes, a small object's body). One full chunk of a
/// body (16 KiB) builds it, so the chunked bodies and long messages run as
/// with an eager table, which later calls of the same key share.
pub(super) const ROUND1_FROM: usize = 16 * 1024;

/// A kernel's round-1 table (`N` entries of 16 bytes), built on first use
/// by a message of at least [`ROUND1_FROM`] bytes and shared by every
/// later call of the key. Indexed only by the counter, which is public; its
/// entries depend on a key byte, so it is wiped when dropped (also when two
/// threads built it at once and one copy is discarded).
#[repr(C, align(64))]
pub(super) struct Round1<const N: usize>(pub(super) [[u8; 16]; N]);

impl<const N: usize> Round1<N> {
    /// A zeroed table on the heap, for a kernel to fill.
    pub(super) fn zeroed() -> Box<Self> {
        Box::new(Round1([[0; 16]; N]))
    }
}

impl<const N: usize> Drop for Round1<N> {
    fn drop(&mut self) {
        wipe_slice(self.0.as_flattened_mut());
    }
}

/// The lazily built round-1 table of a key, and from which message length
/// it is built (a field, so that the kernels' tests can force either path).
pub(super) struct LazyRound1<const N: usize> {
    table: std::sync::OnceLock<Box<Round1<N>>>,
    pub(super) from: usize,
}

impl<const N: usize> LazyRound1<N> {
    pub(super) fn new() -> Self {
        LazyRound1 {
            table: std::sync::OnceLock::new(),
            from: ROUND1_FROM,
        }
    }

    /// The table, if built.
    #[inline]
    pub(super) fn get(&self) -> Option<&[[u8; 16]; N]> {
        self.table.get().map(|t| &t.0)
    }

    /// Whether a message of `len` bytes should build the table first.
    #[inline]
    pub(super) fn wanted(&self, len: usize) -> bool {
        len >= self.from && self.table.get().is_none()
    }

    /// Installs a built table (a concurrent builder's copy is dropped,
    /// and so wiped).
    pub(super) fn set(&self, table: Box<Round1<N>>) {
        drop(self.table.set(table));
    }
}
