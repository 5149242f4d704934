//! Failures and their exit codes: 0 ok, 1 usage, 2 authentication failure,
//! 3 key management error, 4 I/O.

use std::path::Path;

use objseal::{BodyError, CipherError, Error, KeyError, KmsError};

/// Bad arguments or a refused request (exit 1).
pub const USAGE: u8 = 1;
/// The object does not authenticate: wrong key, tampered or not objseal (exit 2).
pub const AUTH: u8 = 2;
/// The key store or KMS refused (exit 3).
pub const KEYS: u8 = 3;
/// Reading or writing failed (exit 4).
pub const IO: u8 = 4;

/// A failed command: its exit code and the one line to print.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// The message, without the `objseal: ` prefix.
    pub message: String,
}

impl Failure {
    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: USAGE,
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, e: &std::io::Error) -> Self {
        Failure {
            code: IO,
            message: format!("{}: {e}", path.display()),
        }
    }

    /// An objseal error met while working on `path`, with advice by kind.
    pub fn from_error(e: Error, path: &Path) -> Self {
        let code = code_of(&e);
        Self::with_code(e, path, code)
    }

    /// An objseal error that, met while reading the object in `path`, can
    /// only come from a damaged or foreign object: an authentication
    /// failure (exit 2) whatever [`code_of`] says of it elsewhere.
    pub fn damaged(e: Error, path: &Path) -> Self {
        Self::with_code(e, path, AUTH)
    }

    fn with_code(e: Error, path: &Path, code: u8) -> Self {
        let advice = match code {
            AUTH => {
                "; the file was modified, is not an objseal file, or needs another key (check --customer-key-file, --bucket/--key)"
            }
            _ => "",
        };
        let name = path.display();
        let message = match &e {
            Error::Io { path: Some(_), .. } => format!("{e}"),
            _ => format!("{name}: {e}{advice}"),
        };
        Failure { code, message }
    }
}

/// The exit code for an objseal error.
pub fn code_of(e: &Error) -> u8 {
    match e {
        Error::Io { .. } => IO,
        Error::Cipher(CipherError::TagMismatch) => AUTH,
        Error::Cipher(_) => USAGE,
        Error::Body(BodyError::InvalidRange { .. } | BodyError::TooLong { .. }) => USAGE,
        // A declared length that the input does not match: the input (a
        // file that changed while it was read) is not what it was.
        Error::Body(
            BodyError::Random { .. } | BodyError::WriterPoisoned | BodyError::DeclaredLength { .. },
        ) => IO,
        Error::Body(_) | Error::Format(_) => AUTH,
        // Wrapped-key details that do not parse (a version byte other than
        // 1, an encryption context out of order) are a damaged object, not
        // a key-management state.
        Error::Key(
            KeyError::UnwrapFailed { .. }
            | KeyError::AccessDenied
            | KeyError::UnsupportedDetails { .. }
            | KeyError::ContextNotCanonical { .. },
        ) => AUTH,
        Error::Key(
            KeyError::InvalidKeyLength { .. }
            | KeyError::CustomerKeyRequired
            | KeyError::CustomerKeyNotApplicable { .. }
            | KeyError::ModeMismatch { .. },
        ) => USAGE,
        Error::Key(_) => KEYS,
        Error::Kms(
            KmsError::InvalidCiphertext { .. }
            | KmsError::ContextMismatch
            | KmsError::IncorrectKey { .. },
        ) => AUTH,
        // Arguments out of range or malformed: usage, like any bad flag.
        Error::Kms(
            KmsError::InvalidDeletionWindow { .. }
            | KmsError::InvalidKeyReference { .. }
            | KmsError::InvalidContext { .. }
            // An unset AWS_ACCESS_KEY_ID or the like: fixed by the caller.
            | KmsError::Configuration { .. },
        ) => USAGE,
        // Everything else the KMS says (including Throttled, Unavailable
        // and Refused from AWS KMS) is a key-management error.
        Error::Kms(_) => KEYS,
        _ => USAGE,
    }
}
