//! The rig's verifying subscriber checks each trigger as a controller written from
//! `docs/contract.md` would: it takes the signed bytes out of the payload
//! ([`firebreak_protocols::signed`]), checks the Ed25519 signature with the public key file
//! `firebreak keygen` wrote, and decodes the trigger from the signed bytes.
//!
//! `hil` does not link the gateway (it drives it as a process), so it does not use the
//! gateway's `Verifier`. That is on purpose: a second implementation written from the
//! contract, like a controller in another language, catches a gateway that signs something
//! else than what the contract says.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use firebreak_protocols::{Trigger, message, signed};
use serde::Deserialize;

/// The `schema` of a public key file (docs/contract.md, `firebreak keygen`).
pub const PUBLIC_KEY_SCHEMA: &str = "firebreak.public-key/1";

/// A public key the rig trusts.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    key_id: String,
    key: ed25519_dalek::VerifyingKey,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    schema: String,
    key_id: String,
    ed25519: String,
}

impl TrustedKey {
    /// Reads a public key file: `{"schema":"firebreak.public-key/1","key_id":…,"ed25519":…}`.
    pub fn load(path: &Path) -> Result<TrustedKey, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        TrustedKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the text of a public key file.
    pub fn parse(text: &[u8]) -> Result<TrustedKey, String> {
        let file: PublicFile = serde_json::from_slice(text)
            .map_err(|e| format!("not a {PUBLIC_KEY_SCHEMA} file: {e}"))?;
        if file.schema != PUBLIC_KEY_SCHEMA {
            return Err(format!(
                "schema is {:?}, not {PUBLIC_KEY_SCHEMA}",
                file.schema
            ));
        }
        let bytes: [u8; 32] = BASE64
            .decode(file.ed25519.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("ed25519 is not base64 of 32 bytes")?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|e| format!("ed25519 is not a public key: {e}"))?;
        Ok(TrustedKey {
            key_id: file.key_id,
            key,
        })
    }

    /// Checks a payload with whichever of `keys` signed it (by key id); the first key's
    /// error when none did.
    pub fn verify_any(keys: &[TrustedKey], payload: &[u8]) -> Result<Trigger, String> {
        let mut first = None;
        for k in keys {
            match k.verify(payload) {
                Ok(t) => return Ok(t),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.unwrap_or_else(|| "no trusted key".to_string()))
    }

    /// Its key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Checks a payload from a trigger topic; returns the trigger decoded from the signed
    /// bytes, or why it must not be acted on.
    pub fn verify(&self, payload: &[u8]) -> Result<Trigger, String> {
        let parts = signed::split(payload).map_err(|e| format!("unsigned or malformed: {e}"))?;
        let signature = signed::decode_signature(parts.signature)
            .map_err(|e| format!("malformed signature object: {e}"))?;
        if signature.key_id.as_str() != self.key_id {
            return Err(format!(
                "signed by key {:?}, not the trusted {:?}",
                signature.key_id.as_str(),
                self.key_id
            ));
        }
        let bytes: [u8; 64] = BASE64
            .decode(signature.ed25519.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the signature is not base64 of 64 bytes")?;
        let canonical = parts.canonical_vec();
        self.key
            .verify_strict(&canonical, &ed25519_dalek::Signature::from_bytes(&bytes))
            .map_err(|_| "bad signature: forged, or changed after signing".to_string())?;
        let mut trigger: Trigger = message::decode(&canonical)
            .map_err(|e| format!("the signed bytes are not a trigger: {e}"))?;
        trigger.signature = Some(signature);
        Ok(trigger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;
    use firebreak_protocols::message::encode_vec;
    use firebreak_protocols::signed::signed_vec;
    use firebreak_protocols::{GatewayId, IncidentId, KeyId, Level, Signature, SiteId};

    fn key_file(seed: u8) -> (ed25519_dalek::SigningKey, String) {
        let k = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let text = format!(
            r#"{{"schema":"firebreak.public-key/1","key_id":"k1","ed25519":"{}"}}"#,
            BASE64.encode(k.verifying_key().to_bytes())
        );
        (k, text)
    }

    fn payload(k: &ed25519_dalek::SigningKey, key_id: &str) -> Vec<u8> {
        let t = Trigger::new(
            GatewayId::new("gw").unwrap(),
            7,
            IncidentId::new("gw-1").unwrap(),
            SiteId::new("s").unwrap(),
            None,
            Level::Evacuate,
            Level::Prepare,
            1_700_000_000_000,
        )
        .unwrap();
        let canonical = encode_vec(&t).unwrap();
        let sig = Signature {
            key_id: KeyId::new(key_id).unwrap(),
            ed25519: BASE64
                .encode(k.sign(&canonical).to_bytes())
                .as_str()
                .try_into()
                .unwrap(),
        };
        signed_vec(&canonical, &sig).unwrap()
    }

    #[test]
    fn verifies_and_refuses() {
        let (k, text) = key_file(3);
        let trusted = TrustedKey::parse(text.as_bytes()).unwrap();
        let good = payload(&k, "k1");
        assert_eq!(trusted.verify(&good).unwrap().seq, 7);
        let forged = payload(&key_file(4).0, "k1");
        assert!(
            trusted
                .verify(&forged)
                .unwrap_err()
                .contains("bad signature")
        );
        let other = payload(&k, "k2");
        assert!(
            trusted
                .verify(&other)
                .unwrap_err()
                .contains("not the trusted")
        );
        let tampered = String::from_utf8(good)
            .unwrap()
            .replace("\"evacuate\"", "\"watch\"");
        assert!(
            trusted
                .verify(tampered.as_bytes())
                .unwrap_err()
                .contains("bad signature")
        );
        assert!(trusted.verify(b"{\"seq\":1}").is_err());
        assert!(TrustedKey::parse(b"{}").is_err());
    }
}
