//! A bounds-checked reader over envelope bytes and the matching writers.
//! Every read checks the remaining length first, so nothing is allocated
//! beyond what the input holds.

use crate::error::FormatError;

/// Reads big-endian fields from a byte slice.
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// Fails unless `n` more bytes are present.
    pub(super) fn need(&self, field: &'static str, n: usize) -> Result<(), FormatError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            return Err(FormatError::Truncated {
                field,
                needed: n as u64,
                available: available as u64,
            });
        }
        Ok(())
    }

    pub(super) fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], FormatError> {
        self.need(field, n)?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(super) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, FormatError> {
        self.array(field).map(u16::from_be_bytes)
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, FormatError> {
        self.array(field).map(u32::from_be_bytes)
    }

    pub(super) fn u64(&mut self, field: &'static str) -> Result<u64, FormatError> {
        self.array(field).map(u64::from_be_bytes)
    }

    /// A UTF-8 string with a 16-bit length prefix, `min..=max` bytes long.
    pub(super) fn string16(
        &mut self,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> Result<String, FormatError> {
        let len = usize::from(self.u16(field)?);
        if !(min..=max).contains(&len) {
            return Err(FormatError::OutOfBounds {
                field,
                value: len as u64,
                min: min as u64,
                max: max as u64,
            });
        }
        let bytes = self.take(field, len)?;
        core::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| FormatError::NotUtf8 { field })
    }

    /// Bytes with a 32-bit length prefix, at most `max` long.
    pub(super) fn bytes32(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], FormatError> {
        let len = self.u32(field)?;
        if len as u64 > max as u64 {
            return Err(FormatError::OutOfBounds {
                field,
                value: len.into(),
                min: 0,
                max: max as u64,
            });
        }
        self.take(field, len as usize)
    }
}

/// Appends `bytes` with a 16-bit big-endian length prefix (the caller has
/// checked the length fits).
pub(super) fn put_bytes16(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Appends `bytes` with a 32-bit big-endian length prefix.
pub(super) fn put_bytes32(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}
