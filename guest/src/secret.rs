//! Containers for sensitive bytes: their `Debug` never shows the contents and
//! their own buffer is wiped when dropped. (Transient copies — the HTTP body
//! while it is parsed, the JSON parser's strings, the bytes lowered across the
//! WIT boundary — are freed but not wiped: the component's memory is private
//! to its instance, and wiping is defence in depth, not the guarantee.)

use crate::prelude::*;
use core::fmt;

/// Secret bytes (a secret value or a credential).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The bytes. Call sites that use this are the only places a value leaves
    /// the wrapper: the WIT boundary and the request builder.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Hands the bytes over (to the WIT boundary, which copies them out of
    /// this component's memory and frees them) without another copy.
    pub fn into_vec(mut self) -> Vec<u8> {
        core::mem::take(&mut self.0)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretBytes {
    fn from(s: String) -> Self {
        SecretBytes(s.into_bytes())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        // Volatile writes so the wipe is not optimised away.
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference.
            unsafe { core::ptr::write_volatile(b, 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_contents() {
        let s = SecretBytes::new(b"hunter2".to_vec());
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("7 bytes"));
    }
}
