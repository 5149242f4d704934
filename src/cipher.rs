//! AES-256-GCM: one safe type, [`Aes256Gcm`], keyed once, that seals and opens
//! in place with a 96-bit nonce, associated data and a detached 16-byte tag.
//!
//! The implementation ("backend") is chosen once per key from what the CPU
//! can do, and can be forced through [`Aes256Gcm::with_backend`] or the
//! environment variable `OBJSEAL_BACKEND` (see [`Backend::from_env`]). Every
//! backend computes exactly the same function; they differ only in speed.
//!
//! | Backend | CPU features | Implementation |
//! |---|---|---|
//! | [`Backend::VaesClmulAvx512`] | AVX-512F, AVX-512BW, AVX-512VL and everything below | fused CTR+GHASH on 512-bit registers, masked tails |
//! | [`Backend::VaesClmulAvx2`] | AVX, AVX2, VAES, VPCLMULQDQ, AES-NI, PCLMULQDQ, SSSE3, SSE4.1 | fused CTR+GHASH on 256-bit registers |
//! | [`Backend::AesNiClmul`] | AES-NI, PCLMULQDQ, SSSE3, SSE4.1 | fused CTR+GHASH on 128-bit registers |
//! | [`Backend::Portable`] | any | the `aes`, `ctr` and `ghash` crates, composed here |
//!
//! The portable backend itself uses AES-NI and CLMUL through its dependencies
//! when the CPU has them, and their constant-time software code otherwise.
//!
//! [`Backend::best`] takes the first of [`Backend::ALL`] the CPU runs, so the
//! 512-bit kernel wherever AVX-512F/BW/VL, VAES and VPCLMULQDQ are present,
//! for messages of every length: on the Xeon it was measured on (`cargo
//! bench --bench ratios`, interleaved) it was faster than the 256-bit kernel
//! at every size, 2.7× at 64 bytes (it runs only the registers a short
//! message needs, with masked loads and stores) and about 1.35× from 16 KiB,
//! so there is no dispatch by length. On a CPU whose clock drops under
//! 512-bit code, which this machine could not show,
//! `OBJSEAL_BACKEND=vaes-clmul-avx2` keeps the 256-bit kernel.

mod portable;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

use core::fmt;
use core::str::FromStr;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::error::{CipherError, Error};

/// Key length of AES-256, in bytes.
pub const KEY_LEN: usize = 32;
/// The only nonce length accepted, in bytes (96 bits).
pub const NONCE_LEN: usize = 12;
/// Tag length, in bytes. Truncated tags are not supported.
pub const TAG_LEN: usize = 16;
/// Longest message one seal or open accepts: 2^39 - 256 bits
/// (SP 800-38D §5.2.1.1).
pub const MAX_MESSAGE_LEN: u64 = (1 << 36) - 32;
/// Longest associated data one seal or open accepts: 2^64 - 1 bits
/// (SP 800-38D §5.2.1.1), rounded down to whole bytes.
pub const MAX_AAD_LEN: u64 = (1 << 61) - 1;

/// Name of the environment variable that forces a backend.
pub const BACKEND_ENV: &str = "OBJSEAL_BACKEND";

/// An AES-256-GCM implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Backend {
    /// The `aes`, `ctr` and `ghash` crates, composed into GCM by objseal.
    /// Runs everywhere.
    Portable,
    /// Fused AES-CTR and GHASH on 128-bit registers (AES-NI + PCLMULQDQ).
    AesNiClmul,
    /// Fused AES-CTR and GHASH on 256-bit registers (VAES + VPCLMULQDQ + AVX2).
    VaesClmulAvx2,
    /// Fused AES-CTR and GHASH on 512-bit registers (VAES + VPCLMULQDQ +
    /// AVX-512F/BW/VL), with masked loads and stores for partial strides.
    VaesClmulAvx512,
}

impl Backend {
    /// Every backend objseal knows, fastest first (the order
    /// [`Backend::best`] tries them in).
    pub const ALL: [Backend; 4] = [
        Backend::VaesClmulAvx512,
        Backend::VaesClmulAvx2,
        Backend::AesNiClmul,
        Backend::Portable,
    ];

    /// The name used by `OBJSEAL_BACKEND` and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::AesNiClmul => "aesni-clmul",
            Backend::VaesClmulAvx2 => "vaes-clmul-avx2",
            Backend::VaesClmulAvx512 => "vaes-clmul-avx512",
        }
    }

    /// Whether this CPU and this build can run the backend; if not, why.
    pub fn check(self) -> Result<(), CipherError> {
        let unavailable = |reason| CipherError::BackendUnavailable {
            backend: self,
            reason,
        };
        match self {
            Backend::Portable => Ok(()),
            #[cfg(target_arch = "x86_64")]
            Backend::AesNiClmul | Backend::VaesClmulAvx2 | Backend::VaesClmulAvx512 => {
                x86::check(self).map_err(unavailable)
            }
            #[cfg(not(target_arch = "x86_64"))]
            Backend::AesNiClmul | Backend::VaesClmulAvx2 | Backend::VaesClmulAvx512 => {
                Err(unavailable("this build is not for x86_64"))
            }
        }
    }

    /// Whether this CPU and this build can run the backend.
    pub fn is_available(self) -> bool {
        self.check().is_ok()
    }

    /// The backends this CPU can run, fastest first.
    pub fn available() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_available()).collect()
    }

    /// The fastest backend this CPU can run.
    pub fn best() -> Backend {
        Self::ALL
            .into_iter()
            .find(|b| b.is_available())
            .unwrap_or(Backend::Portable)
    }

    /// Interprets a value of `OBJSEAL_BACKEND`: `None`, empty or `auto` give
    /// [`Backend::best`]; a backend name gives that backend if it can run here,
    /// and an error otherwise. There is no silent fallback.
    pub fn from_env_value(value: Option<&str>) -> Result<Backend, CipherError> {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Ok(Self::best()),
            Some(name) => {
                let backend: Backend = name.parse()?;
                backend.check()?;
                Ok(backend)
            }
        }
    }

    /// The backend `OBJSEAL_BACKEND` asks for, or [`Backend::best`] when it is
    /// unset. An unknown or unsupported value is an error, never a fallback.
    pub fn from_env() -> Result<Backend, CipherError> {
        match std::env::var(BACKEND_ENV) {
            Ok(v) => Self::from_env_value(Some(&v)),
            Err(std::env::VarError::NotPresent) => Self::from_env_value(None),
            Err(std::env::VarError::NotUnicode(v)) => Err(CipherError::UnknownBackend {
                name: v.to_string_lossy().into_owned(),
            }),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = CipherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| CipherError::UnknownBackend { name: s.to_owned() })
    }
}

/// What the CPU offers and which backend objseal picks; see [`cpu_report`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CpuReport {
    /// The target architecture of this build.
    pub arch: &'static str,
    /// CPU features that matter to objseal, and whether this CPU has them.
    pub features: Vec<(&'static str, bool)>,
    /// Every backend with whether it runs here, and why not.
    pub backends: Vec<(Backend, Result<(), CipherError>)>,
    /// The backend a new key gets: `OBJSEAL_BACKEND` if set, else the fastest.
    pub selected: Result<Backend, CipherError>,
}

impl fmt::Display for CpuReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "arch: {}", self.arch)?;
        let feats: Vec<String> = self
            .features
            .iter()
            .map(|(n, on)| format!("{n}{}", if *on { "+" } else { "-" }))
            .collect();
        writeln!(f, "cpu features: {}", feats.join(" "))?;
        for (b, r) in &self.backends {
            match r {
                Ok(()) => writeln!(f, "  {:<16} available", b.name())?,
                Err(e) => writeln!(f, "  {:<16} unavailable ({e})", b.name())?,
            }
        }
        match &self.selected {
            Ok(b) => write!(f, "selected: {b}"),
            Err(e) => write!(f, "selected: none ({e})"),
        }
    }
}

/// Reports the CPU features objseal looks for, which backends can run, and
/// which one a new key would use.
///
/// ```
/// let report = objseal::cpu_report();
/// assert!(report.backends.iter().any(|(b, r)| *b == objseal::Backend::Portable && r.is_ok()));
/// println!("{report}");
/// ```
pub fn cpu_report() -> CpuReport {
    #[cfg(target_arch = "x86_64")]
    let features = x86::features();
    #[cfg(not(target_arch = "x86_64"))]
    let features = Vec::new();
    CpuReport {
        arch: std::env::consts::ARCH,
        features,
        backends: Backend::ALL.into_iter().map(|b| (b, b.check())).collect(),
        selected: Backend::from_env(),
    }
}

/// The keyed state of one backend. Boxed so the key schedule lives in one
/// place on the heap and is zeroized there on drop.
enum Engine {
    Portable(Box<portable::Key>),
    #[cfg(target_arch = "x86_64")]
    X86(x86::Key),
}

/// AES-256-GCM with a 96-bit nonce and a 16-byte detached tag, keyed once.
///
/// The key schedule and GHASH key are computed in [`Aes256Gcm::new`] and
/// reused by every call; they are zeroized when the value is dropped.
/// `Debug` prints the backend, never key material.
///
/// ```
/// use objseal::cipher::{Aes256Gcm, Backend};
///
/// let gcm = Aes256Gcm::with_backend(&[0u8; 32], Backend::Portable)?;
/// let mut buf = vec![0u8; 100];
/// let tag = gcm.seal_in_place(&[0u8; 12], b"", &mut buf)?;
///
/// buf[3] ^= 1; // tamper
/// let err = gcm.open_in_place(&[0u8; 12], b"", &mut buf, &tag).unwrap_err();
/// assert!(matches!(err, objseal::Error::Cipher(objseal::CipherError::TagMismatch)));
/// assert!(buf.iter().all(|&b| b == 0)); // nothing unauthenticated is released
/// # Ok::<(), objseal::Error>(())
/// ```
pub struct Aes256Gcm {
    engine: Engine,
}

impl fmt::Debug for Aes256Gcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aes256Gcm")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Aes256Gcm {
    /// Keys the cipher with the backend `OBJSEAL_BACKEND` names, or the
    /// fastest this CPU has when it is unset. Fails if the variable names an
    /// unknown backend or one this CPU cannot run.
    ///
    /// The variable is read once per process, by the first call (reading
    /// it took about 40 ns, a tenth of a key set-up, and every object sets
    /// up four keys); [`Backend::from_env`] reads it anew each time.
    pub fn new(key: &[u8; KEY_LEN]) -> Result<Self, Error> {
        static CHOSEN: std::sync::OnceLock<Result<Backend, CipherError>> =
            std::sync::OnceLock::new();
        let backend = CHOSEN.get_or_init(Backend::from_env).clone()?;
        Self::with_backend(key, backend)
    }

    /// Keys the cipher with the given backend; fails if the CPU cannot run it.
    pub fn with_backend(key: &[u8; KEY_LEN], backend: Backend) -> Result<Self, Error> {
        let engine = match backend {
            Backend::Portable => Engine::Portable(Box::new(portable::Key::new(key))),
            // `x86::Key::new` checks the CPU (for its witness) and fails as
            // `check()` would.
            #[cfg(target_arch = "x86_64")]
            Backend::AesNiClmul | Backend::VaesClmulAvx2 | Backend::VaesClmulAvx512 => {
                Engine::X86(x86::Key::new(key, backend)?)
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => {
                backend.check()?;
                unreachable!("check() refuses x86 backends on other targets")
            }
        };
        Ok(Self { engine })
    }

    /// Keys the cipher from a slice, which must be exactly 32 bytes.
    pub fn from_slice(key: &[u8]) -> Result<Self, Error> {
        let key: &[u8; KEY_LEN] = key
            .try_into()
            .map_err(|_| CipherError::InvalidKeyLength { got: key.len() })?;
        Self::new(key)
    }

    /// The backend this key runs on.
    pub fn backend(&self) -> Backend {
        match &self.engine {
            Engine::Portable(_) => Backend::Portable,
            #[cfg(target_arch = "x86_64")]
            Engine::X86(k) => k.backend(),
        }
    }

    /// Encrypts `buf` in place and returns the 16-byte tag over `aad` and the
    /// ciphertext.
    ///
    /// Each nonce must be used at most once per key. Errors if the nonce is
    /// not 12 bytes or a length limit of SP 800-38D is exceeded; `buf` is
    /// untouched then.
    pub fn seal_in_place(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        let nonce = check_inputs(nonce, aad, buf)?;
        Ok(match &self.engine {
            Engine::Portable(k) => k.seal(nonce, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::X86(k) => k.seal(nonce, aad, buf, None),
        })
    }

    /// Encrypts `plaintext` into `out`, which must be exactly as long, and
    /// returns the 16-byte tag: the same result as copying then
    /// [`Aes256Gcm::seal_in_place`], but the fused x86 backends read and
    /// write in one pass, which matters when the plaintext is not in cache
    /// (the portable backend copies, then seals in place).
    ///
    /// Each nonce must be used at most once per key. Errors, leaving `out`
    /// untouched, if the lengths differ, the nonce is not 12 bytes or a
    /// length limit of SP 800-38D is exceeded.
    ///
    /// ```
    /// use objseal::cipher::Aes256Gcm;
    /// let gcm = Aes256Gcm::new(&[7; 32])?;
    /// let mut out = [0u8; 5];
    /// let tag = gcm.seal_to(&[1; 12], b"aad", b"hello", &mut out)?;
    /// gcm.open_in_place(&[1; 12], b"aad", &mut out, &tag)?;
    /// assert_eq!(&out, b"hello");
    /// assert!(gcm.seal_to(&[1; 12], b"", b"hello", &mut [0u8; 4]).is_err());
    /// # Ok::<(), objseal::Error>(())
    /// ```
    pub fn seal_to(
        &self,
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        same_len(plaintext, out)?;
        let nonce = check_inputs(nonce, aad, out)?;
        Ok(match &self.engine {
            Engine::Portable(k) => {
                out.copy_from_slice(plaintext);
                k.seal(nonce, aad, out)
            }
            #[cfg(target_arch = "x86_64")]
            Engine::X86(k) => k.seal(nonce, aad, out, Some(plaintext)),
        })
    }

    /// Decrypts `ciphertext` into `out`, which must be exactly as long, if
    /// `tag` authenticates it with `nonce` and `aad`: the same result as
    /// copying then [`Aes256Gcm::open_in_place`], in one pass on the fused
    /// x86 backends.
    ///
    /// The tag is compared in constant time. On any failure `out` holds no
    /// plaintext: on a wrong tag it is zeroed, and on an input error
    /// (lengths, nonce or tag length) it is untouched.
    ///
    /// ```
    /// use objseal::cipher::Aes256Gcm;
    /// let gcm = Aes256Gcm::new(&[7; 32])?;
    /// let mut ct = [0u8; 5];
    /// let tag = gcm.seal_to(&[1; 12], b"", b"hello", &mut ct)?;
    /// let mut out = [0u8; 5];
    /// gcm.open_to(&[1; 12], b"", &ct, &tag, &mut out)?;
    /// assert_eq!(&out, b"hello");
    /// ct[0] ^= 1;
    /// assert!(gcm.open_to(&[1; 12], b"", &ct, &tag, &mut out).is_err());
    /// assert_eq!(out, [0; 5]);
    /// # Ok::<(), objseal::Error>(())
    /// ```
    pub fn open_to(
        &self,
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<(), Error> {
        same_len(ciphertext, out)?;
        let nonce = check_inputs(nonce, aad, ciphertext)?;
        let tag: &[u8; TAG_LEN] = tag
            .try_into()
            .map_err(|_| CipherError::InvalidTagLength { got: tag.len() })?;
        let mut expected = match &self.engine {
            Engine::Portable(k) => {
                out.copy_from_slice(ciphertext);
                k.open(nonce, aad, out)
            }
            #[cfg(target_arch = "x86_64")]
            Engine::X86(k) => k.open(nonce, aad, out, Some(ciphertext)),
        };
        let ok = tags_equal(&mut expected, tag);
        if ok {
            Ok(())
        } else {
            out.zeroize();
            Err(CipherError::TagMismatch.into())
        }
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `nonce` and `aad`.
    ///
    /// The tag is compared in constant time. On any failure `buf` holds no
    /// plaintext: on a wrong tag it is zeroed, and on an input error (nonce or
    /// tag length, length limits) it is left as the ciphertext it was.
    pub fn open_in_place(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Error> {
        let nonce = check_inputs(nonce, aad, buf)?;
        let tag: &[u8; TAG_LEN] = tag
            .try_into()
            .map_err(|_| CipherError::InvalidTagLength { got: tag.len() })?;
        let mut expected = match &self.engine {
            Engine::Portable(k) => k.open(nonce, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::X86(k) => k.open(nonce, aad, buf, None),
        };
        let ok = tags_equal(&mut expected, tag);
        if ok {
            Ok(())
        } else {
            buf.zeroize();
            Err(CipherError::TagMismatch.into())
        }
    }
}

/// Compares the expected tag with the given one in constant time, as one
/// 128-bit value: one optimisation barrier, where `subtle`'s slice compare
/// takes one (an out-of-line volatile read) per byte, about 20 ns of a
/// 64-byte open. The expected tag (the valid tag for the ciphertext given,
/// which must not outlive a failed open) is wiped in place, in the caller's
/// array, not in a copy.
fn tags_equal(expected: &mut [u8; TAG_LEN], tag: &[u8; TAG_LEN]) -> bool {
    let ok = u128::from_ne_bytes(*expected)
        .ct_eq(&u128::from_ne_bytes(*tag))
        .into();
    expected.zeroize();
    ok
}

/// The out-of-place APIs' output must be exactly as long as their input.
fn same_len(input: &[u8], out: &[u8]) -> Result<(), Error> {
    if input.len() == out.len() {
        Ok(())
    } else {
        Err(CipherError::OutputLengthMismatch {
            input: input.len(),
            output: out.len(),
        }
        .into())
    }
}

/// Checks nonce length and the SP 800-38D length limits shared by seal and open.
fn check_inputs<'n>(
    nonce: &'n [u8],
    aad: &[u8],
    buf: &[u8],
) -> Result<&'n [u8; NONCE_LEN], CipherError> {
    let nonce: &[u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| CipherError::InvalidNonceLength { got: nonce.len() })?;
    if buf.len() as u64 > MAX_MESSAGE_LEN {
        return Err(CipherError::MessageTooLong {
            len: buf.len() as u64,
        });
    }
    if aad.len() as u64 > MAX_AAD_LEN {
        return Err(CipherError::AssociatedDataTooLong {
            len: aad.len() as u64,
        });
    }
    Ok(nonce)
}

/// The GCM length block: bit lengths of the AAD and the message, big-endian.
fn length_block(aad_len: usize, msg_len: usize) -> [u8; 16] {
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(&((aad_len as u64) * 8).to_be_bytes());
    block[8..].copy_from_slice(&((msg_len as u64) * 8).to_be_bytes());
    block
}

/// The pre-counter block J0 = nonce || 0^31 || 1 for a 96-bit nonce.
fn j0(nonce: &[u8; NONCE_LEN]) -> [u8; 16] {
    let mut block = [0u8; 16];
    block[..NONCE_LEN].copy_from_slice(nonce);
    block[15] = 1;
    block
}
