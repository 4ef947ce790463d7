//! Signed messages: which bytes a signature covers, and where the signature sits in a payload.
//!
//! The signature covers the **exact bytes of the message without its `signature` member**, as
//! the gateway encoded them (the canonical bytes, `B`). Nothing is re-serialized, so a verifier
//! in any language never has to reproduce our number formatting:
//!
//! 1. the gateway encodes the trigger without `signature` (compact JSON, an object: `{…}`),
//!    which gives `B`, and signs `B` with Ed25519;
//! 2. it publishes `P` = `B` without its final `}`, then `,"signature":`, the signature object
//!    `{"key_id":"…","ed25519":"…"}`, then `}`;
//! 3. a verifier finds the **last** occurrence of the bytes `,"signature":{` in `P`, takes the
//!    bytes before it and appends `}`: that is `B` again. The signature object is what lies
//!    between that occurrence's `{` and the final `}` of `P`.
//!
//! The bytes `,"signature":{` cannot occur inside a JSON string of `B` (a `"` in a string is
//! always escaped as `\"`), and `B` has no `signature` member, so the last occurrence is the
//! one the gateway appended. A verifier then decodes **`B`**, not `P`, so that what it acts on
//! is exactly what was signed.
//!
//! [`split`] and [`attach`] do steps 2 and 3 without an allocator; the Ed25519 arithmetic is
//! left to the host (the gateway uses `ed25519-dalek`).

use core::fmt;

/// The bytes that open the signature member: `,"signature":` (the object's `{` follows).
pub const SIGNATURE_MEMBER: &[u8] = b",\"signature\":";

/// A signed payload, split into the canonical bytes (without their final `}`) and the
/// signature object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedParts<'a> {
    /// The payload before the signature member: the canonical bytes without their final `}`.
    pub head: &'a [u8],
    /// The signature object, `{"key_id":"…","ed25519":"…"}`, as it appears in the payload.
    pub signature: &'a [u8],
}

impl SignedParts<'_> {
    /// The length of the canonical bytes: the head and a `}`.
    pub fn canonical_len(&self) -> usize {
        self.head.len() + 1
    }

    /// Writes the canonical bytes (the signed ones) into `out`; returns their length.
    pub fn write_canonical(&self, out: &mut [u8]) -> Result<usize, SignedError> {
        let len = self.canonical_len();
        let dest = out.get_mut(..len).ok_or(SignedError::BufferTooSmall)?;
        let (body, close) = dest.split_at_mut(self.head.len());
        body.copy_from_slice(self.head);
        close.copy_from_slice(b"}");
        Ok(len)
    }

    /// The canonical bytes in a new vector.
    #[cfg(any(test, feature = "std"))]
    pub fn canonical_vec(&self) -> std::vec::Vec<u8> {
        let mut v = std::vec::Vec::with_capacity(self.canonical_len());
        v.extend_from_slice(self.head);
        v.push(b'}');
        v
    }
}

/// Why a payload could not be split or a signature attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignedError {
    /// The payload is not a JSON object ending in `}` (or is the empty object).
    NotAnObject,
    /// The payload has no `,"signature":{` member.
    Unsigned,
    /// The signature member is not the last one: the payload does not end right after it.
    NotLast,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for SignedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAnObject => "payload is not a JSON object ending in '}'",
            Self::Unsigned => "payload has no signature member",
            Self::NotLast => "the signature member is not the last member of the payload",
            Self::BufferTooSmall => "output buffer too small for the signed payload",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SignedError {}

/// Splits a signed payload into its canonical head and its signature object (step 3 above).
pub fn split(payload: &[u8]) -> Result<SignedParts<'_>, SignedError> {
    let (last, body) = payload.split_last().ok_or(SignedError::NotAnObject)?;
    if *last != b'}' || payload.first() != Some(&b'{') {
        return Err(SignedError::NotAnObject);
    }
    let opener = SIGNATURE_MEMBER.len() + 1;
    let at = body
        .windows(opener)
        .rposition(|w| w.strip_prefix(SIGNATURE_MEMBER) == Some(b"{".as_slice()))
        .ok_or(SignedError::Unsigned)?;
    let head = body.get(..at).ok_or(SignedError::Unsigned)?;
    let signature = body
        .get(at + SIGNATURE_MEMBER.len()..)
        .ok_or(SignedError::Unsigned)?;
    // The object must close where the payload does: `{…}` then the payload's own `}`.
    if signature.last() != Some(&b'}') || head.len() < 2 {
        return Err(SignedError::NotLast);
    }
    Ok(SignedParts { head, signature })
}

/// Builds a signed payload from the canonical bytes and an encoded signature object (step 2
/// above); returns the length written to `out`.
pub fn attach(canonical: &[u8], signature: &[u8], out: &mut [u8]) -> Result<usize, SignedError> {
    let head = canonical
        .strip_suffix(b"}")
        .filter(|h| h.len() >= 2 && h.first() == Some(&b'{'))
        .ok_or(SignedError::NotAnObject)?;
    if signature.first() != Some(&b'{') || signature.last() != Some(&b'}') {
        return Err(SignedError::NotAnObject);
    }
    let len = head.len() + SIGNATURE_MEMBER.len() + signature.len() + 1;
    let dest = out.get_mut(..len).ok_or(SignedError::BufferTooSmall)?;
    let mut at = 0;
    for part in [head, SIGNATURE_MEMBER, signature, b"}".as_slice()] {
        let end = at + part.len();
        dest.get_mut(at..end)
            .ok_or(SignedError::BufferTooSmall)?
            .copy_from_slice(part);
        at = end;
    }
    Ok(len)
}

#[cfg(feature = "serde")]
mod json {
    use super::*;
    use crate::message::{MessageError, Signature, check_nesting};

    /// Encodes a signature object, `{"key_id":"…","ed25519":"…"}`, into `buf`.
    pub fn encode_signature(sig: &Signature, buf: &mut [u8]) -> Result<usize, MessageError> {
        serde_json_core::to_slice(sig, buf).map_err(|_| MessageError::BufferTooSmall)
    }

    /// Decodes a signature object found by [`split`].
    pub fn decode_signature(bytes: &[u8]) -> Result<Signature, MessageError> {
        if bytes.len() > 1024 {
            return Err(MessageError::TooLarge { len: bytes.len() });
        }
        check_nesting(bytes)?;
        let mut scratch = [0u8; 128];
        let (sig, _): (Signature, usize) =
            serde_json_core::from_slice_escaped(bytes, &mut scratch).map_err(MessageError::Json)?;
        Ok(sig)
    }

    /// Attaches `sig` to the canonical bytes: the payload to publish.
    #[cfg(feature = "std")]
    pub fn signed_vec(
        canonical: &[u8],
        sig: &Signature,
    ) -> Result<std::vec::Vec<u8>, MessageError> {
        let mut object = [0u8; 256];
        let n = encode_signature(sig, &mut object)?;
        let object = object.get(..n).ok_or(MessageError::BufferTooSmall)?;
        let mut out = std::vec![0u8; canonical.len() + SIGNATURE_MEMBER.len() + n + 1];
        let len = attach(canonical, object, &mut out).map_err(|_| MessageError::Invalid {
            field: "payload",
            problem: "is not a JSON object",
        })?;
        out.truncate(len);
        Ok(out)
    }
}

#[cfg(feature = "std")]
pub use json::signed_vec;
#[cfg(feature = "serde")]
pub use json::{decode_signature, encode_signature};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SIG: &[u8] = br#"{"key_id":"k1","ed25519":"AAAA"}"#;

    fn signed(canonical: &[u8]) -> std::vec::Vec<u8> {
        let mut out = [0u8; 512];
        let n = attach(canonical, SIG, &mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn attach_then_split_gives_the_canonical_bytes_back() {
        let b = br#"{"schema":"x","seq":1}"#;
        let p = signed(b);
        assert_eq!(
            p.as_slice(),
            br#"{"schema":"x","seq":1,"signature":{"key_id":"k1","ed25519":"AAAA"}}"#
        );
        let parts = split(&p).unwrap();
        assert_eq!(parts.signature, SIG);
        let mut out = [0u8; 64];
        let n = parts.write_canonical(&mut out).unwrap();
        assert_eq!(&out[..n], b);
        assert_eq!(parts.canonical_vec(), b);
    }

    #[test]
    fn the_last_signature_member_counts() {
        // A member named signature earlier (an unknown field, say) stays in the signed bytes.
        let b = br#"{"a":{"x":1,"signature":{"k":2}},"b":"\",\"signature\":{"}"#;
        let p = signed(b);
        assert_eq!(split(&p).unwrap().canonical_vec(), b);
    }

    #[test]
    fn refusals() {
        assert_eq!(split(b""), Err(SignedError::NotAnObject));
        assert_eq!(split(b"[1]"), Err(SignedError::NotAnObject));
        assert_eq!(split(br#"{"seq":1}"#), Err(SignedError::Unsigned));
        assert_eq!(
            split(br#"{"seq":1,"signature":{"key_id":"k"},"x":1}"#),
            Err(SignedError::NotLast)
        );
        assert_eq!(split(br#"{,"signature":{}}"#), Err(SignedError::NotLast));
        assert_eq!(
            attach(b"{}", SIG, &mut [0u8; 64]),
            Err(SignedError::NotAnObject)
        );
        assert_eq!(
            attach(br#"{"a":1}"#, SIG, &mut [0u8; 8]),
            Err(SignedError::BufferTooSmall)
        );
    }

    proptest! {
        #[test]
        fn split_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(parts) = split(&bytes) {
                prop_assert!(parts.canonical_len() <= bytes.len());
            }
        }

        #[test]
        fn round_trips(body in "[a-z0-9:,\"{}]{0,40}") {
            let b = std::format!("{{\"a\":1{body}}}");
            let p = signed(b.as_bytes());
            prop_assert_eq!(split(&p).unwrap().canonical_vec(), b.as_bytes());
        }
    }
}
