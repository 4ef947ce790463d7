//! What a controller trusts: each public key bound to the gateways and sites it may speak
//! for, with its validity and revocation (`docs/contract.md`, "Trust files").
//!
//! ```toml
//! schema = "firebreak.trust/1"
//!
//! [[keys]]
//! key_file = "gw-paris-1a-2026.pub"     # relative to this file; or key_id + ed25519 inline
//! gateways = ["gw-paris-1a"]
//! sites = ["paris-1"]
//! not_before = "2026-01-01"              # UTC; or 2026-01-01T06:00:00Z
//! not_after = "2027-01-31"
//!
//! [[keys]]                               # its successor, overlapping for the rotation
//! key_file = "gw-paris-1a-2027.pub"
//! gateways = ["gw-paris-1a"]
//! sites = ["paris-1"]
//! not_before = "2027-01-01"
//!
//! [[keys]]
//! key_file = "gw-paris-1b-2026.pub"
//! gateways = ["gw-paris-1b"]
//! sites = ["paris-1"]
//! revoked = true                         # stolen: nothing it signs is taken, whatever its date
//! ```
//!
//! A bare public key file (`ID.pub`, what `firebreak keygen` writes) is still accepted, as a
//! grant for **one** gateway of any site: the first gateway it is seen signing for; any other
//! gateway signing with it is refused (a trust file lists more).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use firebreak_protocols::time::parse_rfc3339;
use firebreak_protocols::{GatewayId, KeyId, SiteId};
use serde::Deserialize;

use crate::keys::PublicKey;

/// The `schema` of a trust file.
pub const TRUST_SCHEMA: &str = "firebreak.trust/1";

/// Why a trust file (or a key it names) cannot be used: the file, the key path, the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {at}{problem}")]
pub struct TrustError {
    /// The file.
    pub path: PathBuf,
    /// `keys[2].not_after: ` or empty.
    pub at: String,
    /// What is wrong.
    pub problem: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    schema: String,
    #[serde(default)]
    keys: Vec<RawGrant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    key_file: Option<String>,
    key_id: Option<String>,
    ed25519: Option<String>,
    gateways: Vec<String>,
    sites: Vec<String>,
    not_before: Option<String>,
    not_after: Option<String>,
    #[serde(default)]
    revoked: bool,
    /// Free text for people (who, why); ignored.
    #[allow(dead_code)]
    note: Option<String>,
}

/// One key and what it may sign for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The key.
    pub key: PublicKey,
    /// The gateways it speaks for; `None` for a bare public key: one gateway, the first seen.
    pub gateways: Option<BTreeSet<GatewayId>>,
    /// The sites; `None`: any.
    pub sites: Option<BTreeSet<SiteId>>,
    /// Not valid before (ms since the epoch, UTC).
    pub not_before_ms: Option<u64>,
    /// Not valid from (ms since the epoch, UTC).
    pub not_after_ms: Option<u64>,
    /// Revoked: nothing it signs is taken.
    pub revoked: bool,
}

impl Grant {
    /// A bare public key: one gateway (the first seen), any site, no dates.
    pub fn bare(key: PublicKey) -> Grant {
        Grant {
            key,
            gateways: None,
            sites: None,
            not_before_ms: None,
            not_after_ms: None,
            revoked: false,
        }
    }
}

/// `2027-01-31` or `2027-01-31T06:00:00Z` (or with milliseconds) as ms since the epoch.
pub fn parse_date(text: &str) -> Option<u64> {
    let full = match text.len() {
        10 => format!("{text}T00:00:00.000Z"),
        20 if text.ends_with('Z') => format!("{}.000Z", text.get(..19)?),
        24 => text.to_string(),
        _ => return None,
    };
    parse_rfc3339(&full)
}

/// Everything a controller trusts, from trust files and bare public keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    grants: Vec<Grant>,
}

impl Trust {
    /// Reads `path`: a trust file (TOML, `schema = "firebreak.trust/1"`) or a bare public key
    /// file (JSON, `firebreak keygen`'s `ID.pub`).
    pub fn load(path: &Path) -> Result<Trust, TrustError> {
        let err = |at: String, problem: String| TrustError {
            path: path.to_path_buf(),
            at,
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(String::new(), e.to_string()))?;
        if text.trim_start().starts_with('{') {
            let key = PublicKey::parse(text.as_bytes()).map_err(|p| err(String::new(), p))?;
            return Ok(Trust {
                grants: vec![Grant::bare(key)],
            });
        }
        Trust::parse(&text, path)
    }

    /// Parses a trust file's text; `path` names it in errors and is where `key_file`s are
    /// found from.
    pub fn parse(text: &str, path: &Path) -> Result<Trust, TrustError> {
        let err = |at: String, problem: String| TrustError {
            path: path.to_path_buf(),
            at,
            problem,
        };
        let raw: RawTrust = firebreak_protocols::toml_file::parse(text).map_err(|e| {
            let line = e.line.map(|l| format!("line {l}: ")).unwrap_or_default();
            let at = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path)
            };
            err(
                format!("{line}{at}"),
                format!("not a trust file ({TRUST_SCHEMA}): {}", e.problem),
            )
        })?;
        if raw.schema != TRUST_SCHEMA {
            return Err(err(
                "schema: ".into(),
                format!("is {:?}, not {TRUST_SCHEMA:?}", raw.schema),
            ));
        }
        if raw.keys.is_empty() {
            return Err(err("keys: ".into(), "trusts no key".into()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut trust = Trust::default();
        for (i, g) in raw.keys.into_iter().enumerate() {
            let at = |key: &str| format!("keys[{i}].{key}: ");
            let key = match (&g.key_file, &g.key_id, &g.ed25519) {
                (Some(file), None, None) => {
                    let file = base.join(file);
                    PublicKey::load(&file).map_err(|e| err(at("key_file"), e.to_string()))?
                }
                (None, Some(id), Some(b64)) => {
                    let text = format!(
                        r#"{{"schema":"{}","key_id":{},"ed25519":{}}}"#,
                        crate::keys::PUBLIC_KEY_SCHEMA,
                        serde_json::Value::String(id.clone()),
                        serde_json::Value::String(b64.clone())
                    );
                    PublicKey::parse(text.as_bytes()).map_err(|p| err(at("ed25519"), p))?
                }
                _ => {
                    return Err(err(
                        format!("keys[{i}]: "),
                        "give key_file, or key_id and ed25519, not both".into(),
                    ));
                }
            };
            let gateways = ids::<GatewayId>(&g.gateways).map_err(|p| err(at("gateways"), p))?;
            let sites = ids::<SiteId>(&g.sites).map_err(|p| err(at("sites"), p))?;
            let date = |key: &str, v: &Option<String>| -> Result<Option<u64>, TrustError> {
                v.as_deref()
                    .map(|t| {
                        parse_date(t).ok_or_else(|| {
                            err(
                                at(key),
                                format!(
                                    "{t:?} is not a UTC date (2027-01-31 or 2027-01-31T06:00:00Z)"
                                ),
                            )
                        })
                    })
                    .transpose()
            };
            let not_before_ms = date("not_before", &g.not_before)?;
            let not_after_ms = date("not_after", &g.not_after)?;
            if let (Some(b), Some(a)) = (not_before_ms, not_after_ms)
                && a <= b
            {
                return Err(err(at("not_after"), "is not after not_before".into()));
            }
            trust
                .add(Grant {
                    key,
                    gateways: Some(gateways),
                    sites: Some(sites),
                    not_before_ms,
                    not_after_ms,
                    revoked: g.revoked,
                })
                .map_err(|p| err(format!("keys[{i}]: "), p))?;
        }
        Ok(trust)
    }

    /// Adds a grant; refuses a key id already granted (one key, one set of rights).
    pub fn add(&mut self, grant: Grant) -> Result<(), String> {
        if self.get(grant.key.key_id()).is_some() {
            return Err(format!(
                "key {} is granted twice: give each key one entry",
                grant.key.key_id()
            ));
        }
        self.grants.push(grant);
        Ok(())
    }

    /// Everything `other` trusts, too.
    pub fn merge(&mut self, other: Trust) -> Result<(), String> {
        for g in other.grants {
            self.add(g)?;
        }
        Ok(())
    }

    /// The grant of a key id.
    pub fn get(&self, key_id: &KeyId) -> Option<&Grant> {
        self.grants.iter().find(|g| g.key.key_id() == key_id)
    }

    /// Every grant.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }
}

/// A non-empty list of valid, distinct ids.
fn ids<T: std::str::FromStr + Ord>(raw: &[String]) -> Result<BTreeSet<T>, String>
where
    T::Err: std::fmt::Display,
{
    if raw.is_empty() {
        return Err("is empty: name at least one".into());
    }
    let mut out = BTreeSet::new();
    for id in raw {
        let v: T = id.parse().map_err(|e| format!("{id:?} {e}"))?;
        if !out.insert(v) {
            return Err(format!("{id:?} is listed twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    fn key(id: &str, seed: u8) -> SigningKey {
        SigningKey::from_seed(KeyId::new(id).unwrap(), &[seed; 32])
    }

    #[test]
    fn dates_are_utc_days_or_moments() {
        assert_eq!(parse_date("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_date("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_date("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(parse_date("1970-01-01T00:00:01+02:00"), None);
        assert_eq!(parse_date("soon"), None);
    }

    #[test]
    fn a_trust_file_binds_keys_to_gateways_and_sites() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = key("gw-a-2026", 1).write_pair(dir.path()).unwrap();
        let inline = key("gw-b-2026", 2).public();
        let file = dir.path().join("trust.toml");
        let text = format!(
            r#"schema = "firebreak.trust/1"
[[keys]]
key_file = "{}"
gateways = ["gw-a"]
sites = ["paris-1"]
not_before = "2026-01-01"
not_after = "2027-01-31T12:00:00Z"
[[keys]]
key_id = "gw-b-2026"
ed25519 = "{}"
gateways = ["gw-b", "gw-b2"]
sites = ["paris-1", "lyon-2"]
revoked = true
note = "laptop stolen 2026-11-02"
"#,
            public.file_name().unwrap().to_str().unwrap(),
            inline.base64()
        );
        std::fs::write(&file, text).unwrap();
        let trust = Trust::load(&file).unwrap();
        let a = trust.get(&KeyId::new("gw-a-2026").unwrap()).unwrap();
        assert_eq!(
            a.gateways
                .as_ref()
                .unwrap()
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>(),
            ["gw-a"]
        );
        assert_eq!(a.not_before_ms, parse_date("2026-01-01"));
        assert!(!a.revoked);
        let b = trust.get(&KeyId::new("gw-b-2026").unwrap()).unwrap();
        assert!(b.revoked);
        assert_eq!(b.sites.as_ref().unwrap().len(), 2);
        // A bare public key is one grant with nothing bound yet.
        let bare = Trust::load(&public).unwrap();
        assert_eq!(bare.grants()[0].gateways, None);
    }

    #[test]
    fn bad_trust_files_say_where_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        let k = key("k1", 3).public().base64();
        let cases = [
            (
                "schema = \"x\"\n",
                "schema: is \"x\", not \"firebreak.trust/1\"",
            ),
            ("schema = \"firebreak.trust/1\"\n", "keys: trusts no key"),
            (
                "schema = \"firebreak.trust/1\"\n[[keys]]\nkey_id = \"k1\"\ned25519 = \"K\"\ngateways = [\"g\"]\nsites = [\"s\"]\n",
                "keys[0].ed25519: ",
            ),
            (
                "schema = \"firebreak.trust/1\"\n[[keys]]\nkey_id = \"k1\"\ngateways = [\"g\"]\nsites = [\"s\"]\n",
                "keys[0]: give key_file, or key_id and ed25519, not both",
            ),
            (
                &format!(
                    "schema = \"firebreak.trust/1\"\n[[keys]]\nkey_id = \"k1\"\ned25519 = \"{k}\"\ngateways = []\nsites = [\"s\"]\n"
                ),
                "keys[0].gateways: is empty: name at least one",
            ),
            (
                &format!(
                    "schema = \"firebreak.trust/1\"\n[[keys]]\nkey_id = \"k1\"\ned25519 = \"{k}\"\ngateways = [\"g\"]\nsites = [\"s\"]\nnot_after = \"2026-13-01\"\n"
                ),
                "keys[0].not_after: \"2026-13-01\" is not a UTC date",
            ),
            (
                &format!(
                    "schema = \"firebreak.trust/1\"\n[[keys]]\nkey_id = \"k1\"\ned25519 = \"{k}\"\ngateways = [\"g\"]\nsites = [\"s\"]\nnot_before = \"2027-01-01\"\nnot_after = \"2026-01-01\"\n"
                ),
                "keys[0].not_after: is not after not_before",
            ),
            (
                &format!(
                    "schema = \"firebreak.trust/1\"\n[[keys]]\nkey_id = \"k1\"\ned25519 = \"{k}\"\ngateways = [\"g\"]\nsites = [\"s\"]\n[[keys]]\nkey_id = \"k1\"\ned25519 = \"{k}\"\ngateways = [\"h\"]\nsites = [\"s\"]\n"
                ),
                "keys[1]: key k1 is granted twice",
            ),
            (
                &format!(
                    "schema = \"firebreak.trust/1\"\n[[keys]]\nkey_id = \"k1\"\ned25519 = \"{k}\"\ngateways = [\"g\"]\nsites = [\"s\"]\nexpires = 1\n"
                ),
                "unknown field `expires`",
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&file, text).unwrap();
            let e = Trust::load(&file).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{}: ", file.display())) && e.contains(expected),
                "{text}\n  got      {e}\n  expected {expected}"
            );
        }
    }
}
