//! x86-64 backends: CPU-feature witnesses and the fused AES-GCM kernels.
//!
//! A witness is a zero-sized value that only [`AesNiClmul::detect`] /
//! [`VaesClmulAvx2::detect`] can create, after checking the CPU; a kernel's
//! key constructor demands one, so a fast path cannot run without its check.

use super::{Backend, NONCE_LEN, TAG_LEN};
use crate::error::CipherError;

/// Witness that the CPU has AES-NI, PCLMULQDQ, SSSE3 and SSE4.1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AesNiClmul(());

impl AesNiClmul {
    pub(crate) fn detect() -> Option<Self> {
        (std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1"))
        .then_some(Self(()))
    }
}

/// Witness that the CPU has AVX2, VAES and VPCLMULQDQ, as well as everything
/// [`AesNiClmul`] needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VaesClmulAvx2(());

impl VaesClmulAvx2 {
    pub(crate) fn detect() -> Option<Self> {
        // `is_x86_feature_detected!` checks that the OS saves the YMM state
        // for VAES/VPCLMULQDQ; unlike cpufeatures 0.3, it does not also
        // demand the ZMM (AVX-512) state, which CPUs like Zen 3 lack.
        (AesNiClmul::detect().is_some()
            && std::arch::is_x86_feature_detected!("avx")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("vaes")
            && std::arch::is_x86_feature_detected!("vpclmulqdq"))
        .then_some(Self(()))
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
    ]
}

/// Whether an x86 backend can run here.
pub(crate) fn check(backend: Backend) -> Result<(), &'static str> {
    match backend {
        Backend::AesNiClmul => {
            AesNiClmul::detect().ok_or("the CPU lacks one of AES-NI, PCLMULQDQ, SSSE3, SSE4.1")?;
            Err("the fused AES-NI kernel is not part of this build yet")
        }
        Backend::VaesClmulAvx2 => {
            VaesClmulAvx2::detect()
                .ok_or("the CPU lacks one of AVX2, VAES, VPCLMULQDQ, AES-NI, PCLMULQDQ")?;
            Err("the fused VAES kernel is not part of this build yet")
        }
        Backend::Portable => Ok(()),
    }
}

/// A keyed x86 kernel.
pub(crate) enum Key {}

impl Key {
    pub(crate) fn new(_key: &[u8; 32], backend: Backend) -> Result<Self, CipherError> {
        Err(CipherError::BackendUnavailable {
            backend,
            reason: check(backend).err().unwrap_or("not built"),
        })
    }

    pub(crate) fn backend(&self) -> Backend {
        match *self {}
    }

    pub(crate) fn seal(
        &self,
        _nonce: &[u8; NONCE_LEN],
        _aad: &[u8],
        _buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        match *self {}
    }

    pub(crate) fn open(
        &self,
        _nonce: &[u8; NONCE_LEN],
        _aad: &[u8],
        _buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        match *self {}
    }
}
