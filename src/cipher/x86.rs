//! x86-64 backends: CPU-feature witnesses and the fused AES-GCM kernels.
//!
//! A witness is a zero-sized value that only [`AesNiClmul::detect`],
//! [`VaesClmulAvx2::detect`] or [`VaesClmulAvx512::detect`] can create,
//! after checking the CPU; a kernel's key constructor demands one, so a fast
//! path cannot run without its check.
//!
//! Each backend's feature list is written once, in one macro with two arms
//! side by side: `detect` checks exactly the features the kernel functions
//! are compiled for. (Rust accepts only a string literal in
//! `#[target_feature]`, so the list cannot be shared as a constant.)

use super::{Backend, NONCE_LEN, TAG_LEN};
use crate::error::CipherError;

/// The features of the AES-NI backend: `(detect)` checks them; applied to
/// items, it compiles each for them.
macro_rules! aesni_clmul_features {
    (detect) => {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    };
    ($($item:item)*) => {
        $( #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")] $item )*
    };
}

/// The features of the VAES backend (a superset of the AES-NI backend's, so
/// its functions may call those): `(detect)` checks them; applied to items,
/// it compiles each for them.
macro_rules! vaes_clmul_avx2_features {
    (detect) => {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("avx")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("vaes")
            && std::arch::is_x86_feature_detected!("vpclmulqdq")
    };
    ($($item:item)*) => {
        $( #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq")] $item )*
    };
}

/// The features of the VAES-512 backend (a superset of the VAES backend's,
/// so its functions may call those of both other kernels): `(detect)`
/// checks them; applied to items, it compiles each for them.
macro_rules! vaes_clmul_avx512_features {
    (detect) => {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("avx")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("vaes")
            && std::arch::is_x86_feature_detected!("vpclmulqdq")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
    };
    ($($item:item)*) => {
        $( #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1,avx,avx2,vaes,vpclmulqdq,avx512f,avx512bw,avx512vl")] $item )*
    };
}

mod aesni_clmul;
mod key_schedule;
#[cfg(test)]
mod test_support;
mod vaes_avx2;
mod vaes_avx512;

pub(crate) use witness::{AesNiClmul, VaesClmulAvx2, VaesClmulAvx512};

/// The witnesses live in a leaf module of their own, so that their private
/// field keeps every other module, the kernels included, from creating one
/// without `detect`.
mod witness {
    /// Witness that the CPU has AES-NI, PCLMULQDQ, SSSE3 and SSE4.1.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct AesNiClmul(());

    impl AesNiClmul {
        pub(crate) fn detect() -> Option<Self> {
            (aesni_clmul_features!(detect)).then_some(Self(()))
        }
    }

    /// Witness that the CPU has AVX2, VAES and VPCLMULQDQ, as well as
    /// everything [`AesNiClmul`] needs.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct VaesClmulAvx2(());

    impl VaesClmulAvx2 {
        pub(crate) fn detect() -> Option<Self> {
            // std reports `vaes`/`vpclmulqdq` from CPUID alone: the check
            // that the OS saves the YMM state comes from `avx`/`avx2`, which
            // must stay in the list. (cpufeatures 0.3 would instead demand
            // the ZMM state for `vaes`, missing VAES on AVX2-only CPUs such
            // as Zen 3.)
            (vaes_clmul_avx2_features!(detect)).then_some(Self(()))
        }
    }

    /// Witness that the CPU has AVX-512F, AVX-512BW and AVX-512VL, as well
    /// as everything [`VaesClmulAvx2`] needs.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct VaesClmulAvx512(());

    impl VaesClmulAvx512 {
        pub(crate) fn detect() -> Option<Self> {
            // std's `avx512*` checks include that the OS saves the opmask
            // and ZMM state (XCR0), and `avx`/`avx2` the YMM state.
            (vaes_clmul_avx512_features!(detect)).then_some(Self(()))
        }
    }
}

/// The x86 features that matter to objseal, for [`super::cpu_report`].
pub(crate) fn features() -> Vec<(&'static str, bool)> {
    vec![
        ("aes", std::arch::is_x86_feature_detected!("aes")),
        (
            "pclmulqdq",
            std::arch::is_x86_feature_detected!("pclmulqdq"),
        ),
        ("ssse3", std::arch::is_x86_feature_detected!("ssse3")),
        ("sse4.1", std::arch::is_x86_feature_detected!("sse4.1")),
        ("avx", std::arch::is_x86_feature_detected!("avx")),
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ("vaes", std::arch::is_x86_feature_detected!("vaes")),
        (
            "vpclmulqdq",
            std::arch::is_x86_feature_detected!("vpclmulqdq"),
        ),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
        ("avx512vl", std::arch::is_x86_feature_detected!("avx512vl")),
    ]
}

/// `buf` and `src` cut to their common length, so a kernel never reads
/// past either (callers pass equal lengths).
fn prefix<'a, 'b>(buf: &'a mut [u8], src: Option<&'b [u8]>) -> (&'a mut [u8], Option<&'b [u8]>) {
    let n = src.map_or(buf.len(), |s| s.len().min(buf.len()));
    (&mut buf[..n], src.map(|s| &s[..n]))
}

/// Whether an x86 backend can run here.
pub(crate) fn check(backend: Backend) -> Result<(), &'static str> {
    match backend {
        Backend::AesNiClmul => AesNiClmul::detect()
            .map(drop)
            .ok_or("the CPU lacks one of AES-NI, PCLMULQDQ, SSSE3, SSE4.1"),
        Backend::VaesClmulAvx2 => VaesClmulAvx2::detect().map(drop).ok_or(
            "the CPU lacks one of AVX, AVX2, VAES, VPCLMULQDQ, AES-NI, PCLMULQDQ, SSSE3, SSE4.1",
        ),
        Backend::VaesClmulAvx512 => VaesClmulAvx512::detect().map(drop).ok_or(
            "the CPU (or the OS, for the ZMM state) lacks one of AVX-512F, AVX-512BW, \
             AVX-512VL, AVX, AVX2, VAES, VPCLMULQDQ, AES-NI, PCLMULQDQ, SSSE3, SSE4.1",
        ),
        Backend::Portable => Ok(()),
    }
}

/// A keyed x86 kernel. Boxed: the key schedule and hash-key powers live in
/// one place on the heap and are zeroized there on drop (the 512-bit
/// kernel's boxes, once wiped, are kept for the thread's next keys: see
/// [`vaes_avx512::Pooled`]).
pub(crate) enum Key {
    AesNiClmul(Box<aesni_clmul::Key>),
    VaesClmulAvx2(Box<vaes_avx2::Key>),
    VaesClmulAvx512(vaes_avx512::Pooled),
}

impl Key {
    pub(crate) fn new(key: &[u8; 32], backend: Backend) -> Result<Self, CipherError> {
        let unavailable = |reason| CipherError::BackendUnavailable { backend, reason };
        match backend {
            Backend::AesNiClmul => match AesNiClmul::detect() {
                Some(cpu) => Ok(Key::AesNiClmul(aesni_clmul::Key::new(key, cpu))),
                None => Err(unavailable(check(backend).err().unwrap_or("not detected"))),
            },
            Backend::VaesClmulAvx2 => match VaesClmulAvx2::detect() {
                Some(cpu) => Ok(Key::VaesClmulAvx2(vaes_avx2::Key::new(key, cpu))),
                None => Err(unavailable(check(backend).err().unwrap_or("not detected"))),
            },
            Backend::VaesClmulAvx512 => match VaesClmulAvx512::detect() {
                Some(cpu) => Ok(Key::VaesClmulAvx512(vaes_avx512::Pooled::new(key, cpu))),
                None => Err(unavailable(check(backend).err().unwrap_or("not detected"))),
            },
            Backend::Portable => Err(unavailable("not an x86 kernel")),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Key::AesNiClmul(_) => Backend::AesNiClmul,
            Key::VaesClmulAvx2(_) => Backend::VaesClmulAvx2,
            Key::VaesClmulAvx512(_) => Backend::VaesClmulAvx512,
        }
    }

    /// Seals `buf` in place, or `src` into `buf` in one pass (the same
    /// length; the caller checks).
    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        src: Option<&[u8]>,
    ) -> [u8; TAG_LEN] {
        match self {
            Key::AesNiClmul(k) => k.seal(nonce, aad, buf, src),
            Key::VaesClmulAvx2(k) => k.seal(nonce, aad, buf, src),
            Key::VaesClmulAvx512(k) => k.seal(nonce, aad, buf, src),
        }
    }

    /// Decrypts `buf` in place, or `src` into `buf`; returns the expected
    /// tag, computed over the ciphertext (the caller compares it).
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        src: Option<&[u8]>,
    ) -> [u8; TAG_LEN] {
        match self {
            Key::AesNiClmul(k) => k.open(nonce, aad, buf, src),
            Key::VaesClmulAvx2(k) => k.open(nonce, aad, buf, src),
            Key::VaesClmulAvx512(k) => k.open(nonce, aad, buf, src),
        }
    }
}
