//! Ed25519 keys for trigger signatures: the gateway's private key and the public keys
//! controllers trust, in small JSON files any language reads.
//!
//! ```text
//! gw-paris-1a-2026.key  (mode 0600, on the gateway)
//! {"schema":"firebreak.private-key/1","key_id":"gw-paris-1a-2026","ed25519_seed":"<base64 of 32 bytes>"}
//! gw-paris-1a-2026.pub  (what controllers hold)
//! {"schema":"firebreak.public-key/1","key_id":"gw-paris-1a-2026","ed25519":"<base64 of 32 bytes>"}
//! ```
//!
//! The seed is the 32-byte Ed25519 secret key of RFC 8032; the public key is its 32-byte
//! encoding. Both are standard base64 with padding. Private keys never appear in `Debug`
//! output or logs.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer;
use firebreak_protocols::{KeyId, Signature};
use serde::{Deserialize, Serialize};

/// The `schema` of a private key file.
pub const PRIVATE_KEY_SCHEMA: &str = "firebreak.private-key/1";
/// The `schema` of a public key file.
pub const PUBLIC_KEY_SCHEMA: &str = "firebreak.public-key/1";

/// Why a key could not be made, read or written. Names the file; never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// The file is not a key file of the expected kind.
    #[error("{path}: not a {expected} file: {problem}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The schema expected.
        expected: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// Others can read the private key file.
    #[error(
        "{path}: mode {mode:04o} lets other users read the private key; make it 0600 (chmod 600)"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The system's random source failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateFile {
    schema: String,
    key_id: KeyId,
    ed25519_seed: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    schema: String,
    key_id: KeyId,
    ed25519: String,
}

/// The gateway's signing key.
pub struct SigningKey {
    key_id: KeyId,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate(key_id: KeyId) -> Result<SigningKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(SigningKey { key_id, key })
    }

    /// A key from a 32-byte seed (tests and documentation examples).
    pub fn from_seed(key_id: KeyId, seed: &[u8; 32]) -> SigningKey {
        SigningKey {
            key_id,
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// Reads a private key file; refuses one that other users can read.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|e| file_error(path, "cannot read", e))?;
            let mode = meta.permissions().mode() & 0o777;
            if crate::secrets::check_secret_file(path).is_err() {
                return Err(KeyError::Exposed {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let text = std::fs::read(path).map_err(|e| file_error(path, "cannot read", e))?;
        let format = |problem: String| KeyError::Format {
            path: path.to_path_buf(),
            expected: PRIVATE_KEY_SCHEMA,
            problem,
        };
        // serde_json's errors name a position, never the text around it.
        let file: PrivateFile = serde_json::from_slice(&text).map_err(|e| format(e.to_string()))?;
        if file.schema != PRIVATE_KEY_SCHEMA {
            return Err(format(format!("schema is {:?}", file.schema)));
        }
        let seed = decode_32(&file.ed25519_seed)
            .ok_or_else(|| format("ed25519_seed is not base64 of 32 bytes".into()))?;
        Ok(SigningKey::from_seed(file.key_id, &seed))
    }

    /// Its id.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs the canonical bytes of a message.
    pub fn sign(&self, canonical: &[u8]) -> Signature {
        let sig = self.key.sign(canonical);
        let mut ed25519 = heapless::String::new();
        // Always 88 characters: base64 of 64 bytes.
        let _ = ed25519.push_str(&BASE64.encode(sig.to_bytes()));
        Signature {
            key_id: self.key_id.clone(),
            ed25519,
        }
    }

    /// Writes `DIR/ID.key` (mode 0600) and `DIR/ID.pub`; refuses to overwrite either.
    pub fn write_pair(&self, dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, "cannot create", e))?;
        let private = dir.join(format!("{}.key", self.key_id));
        let public = dir.join(format!("{}.pub", self.key_id));
        for p in [&private, &public] {
            if p.exists() {
                return Err(KeyError::File {
                    path: p.clone(),
                    problem: "exists already; choose another key id or directory".into(),
                });
            }
        }
        let file = PrivateFile {
            schema: PRIVATE_KEY_SCHEMA.into(),
            key_id: self.key_id.clone(),
            ed25519_seed: BASE64.encode(self.key.to_bytes()),
        };
        let text = serde_json::to_string(&file).map_err(|e| KeyError::File {
            path: private.clone(),
            problem: e.to_string(),
        })?;
        write_new(&private, &text, 0o600)?;
        write_new(&public, &self.public().file_text(), 0o644)?;
        Ok((private, public))
    }
}

/// A public key a controller trusts, with its id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_id: KeyId,
    key: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .field("ed25519", &BASE64.encode(self.key.as_bytes()))
            .finish()
    }
}

impl PublicKey {
    /// Reads a public key file (`firebreak keygen` writes `ID.pub`).
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = std::fs::read(path).map_err(|e| file_error(path, "cannot read", e))?;
        PublicKey::parse(&text).map_err(|problem| KeyError::Format {
            path: path.to_path_buf(),
            expected: PUBLIC_KEY_SCHEMA,
            problem,
        })
    }

    /// Parses the text of a public key file.
    pub fn parse(text: &[u8]) -> Result<PublicKey, String> {
        let file: PublicFile = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        if file.schema != PUBLIC_KEY_SCHEMA {
            return Err(format!("schema is {:?}", file.schema));
        }
        let bytes = decode_32(&file.ed25519).ok_or("ed25519 is not base64 of 32 bytes")?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| "ed25519 is not a valid Ed25519 public key".to_string())?;
        Ok(PublicKey {
            key_id: file.key_id,
            key,
        })
    }

    /// Its id.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The 32-byte key, base64.
    pub fn base64(&self) -> String {
        BASE64.encode(self.key.as_bytes())
    }

    /// The text of its public key file, one JSON line.
    pub fn file_text(&self) -> String {
        let file = PublicFile {
            schema: PUBLIC_KEY_SCHEMA.into(),
            key_id: self.key_id.clone(),
            ed25519: self.base64(),
        };
        // Serializing three strings cannot fail.
        serde_json::to_string(&file).unwrap_or_default() + "\n"
    }

    /// Whether `signature_b64` is this key's signature of `canonical` (strict verification:
    /// no malleable or small-order forms).
    pub fn verifies(&self, canonical: &[u8], signature_b64: &str) -> bool {
        let Ok(bytes) = BASE64.decode(signature_b64) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        self.key.verify_strict(canonical, &sig).is_ok()
    }
}

fn decode_32(s: &str) -> Option<[u8; 32]> {
    BASE64
        .decode(s)
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
}

fn file_error(path: &Path, what: &str, e: std::io::Error) -> KeyError {
    KeyError::File {
        path: path.to_path_buf(),
        problem: format!("{what}: {e}"),
    }
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options
        .open(path)
        .map_err(|e| file_error(path, "cannot create", e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(if text.ends_with('\n') { b"" } else { b"\n" }))
        .and_then(|()| f.sync_all())
        .map_err(|e| file_error(path, "cannot write", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_round_trips_and_signs() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(KeyId::new("k1").unwrap()).unwrap();
        let (private, public) = key.write_pair(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let back = SigningKey::load(&private).unwrap();
        let pubkey = PublicKey::load(&public).unwrap();
        assert_eq!(pubkey, key.public());
        let sig = back.sign(b"{\"a\":1}");
        assert_eq!(sig.ed25519.len(), 88);
        assert!(pubkey.verifies(b"{\"a\":1}", &sig.ed25519));
        assert!(!pubkey.verifies(b"{\"a\":2}", &sig.ed25519));
        assert!(!pubkey.verifies(b"{\"a\":1}", "not base64"));
        assert!(key.write_pair(dir.path()).is_err(), "never overwrites");
        assert!(!format!("{back:?}").contains(&BASE64.encode(back.key.to_bytes())));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_private_key_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(KeyId::new("k1").unwrap()).unwrap();
        let (private, _) = key.write_pair(dir.path()).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SigningKey::load(&private).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "mode 0644 lets other users read the private key; make it 0600 (chmod 600)"
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pub");
        std::fs::write(
            &p,
            "{\"schema\":\"firebreak.public-key/1\",\"key_id\":\"k\",\"ed25519\":\"AAAA\"}",
        )
        .unwrap();
        let e = PublicKey::load(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("not a firebreak.public-key/1 file: ed25519 is not base64 of 32 bytes"),
            "{e}"
        );
    }
}
