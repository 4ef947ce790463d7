//! Validated names: the parts topics are built from and the ids messages carry.
//!
//! Every id is also an MQTT topic segment, so the same rule applies to all of them: 1 to
//! [`MAX_ID_LEN`] bytes of UTF-8 with no `/`, `+`, `#`, NUL or other control character.

use core::fmt;
use core::str::FromStr;

/// The longest id, in bytes (UTF-8), and so the longest topic segment.
pub const MAX_ID_LEN: usize = 64;

/// Storage of an id.
pub type IdString = heapless::String<MAX_ID_LEN>;

/// Why a string is not a valid id or topic segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// The string is empty.
    Empty,
    /// The string is longer than [`MAX_ID_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The string holds a character that may not appear in a topic segment.
    Forbidden {
        /// The offending character.
        ch: char,
        /// Its byte offset in the string.
        at: usize,
    },
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("is empty"),
            Self::TooLong { len } => write!(f, "is {len} bytes long, more than {MAX_ID_LEN}"),
            Self::Forbidden { ch, at } => {
                write!(f, "contains forbidden character {ch:?} at byte {at}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for IdError {}

/// Checks that `s` can be an id and a topic segment.
pub fn validate_segment(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: s.len() });
    }
    match s
        .char_indices()
        .find(|&(_, ch)| matches!(ch, '/' | '+' | '#') || ch.is_control())
    {
        Some((at, ch)) => Err(IdError::Forbidden { ch, at }),
        None => Ok(()),
    }
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(try_from = "IdString", into = "IdString"))]
        pub struct $name(IdString);

        impl $name {
            /// Validates `s` (see [`validate_segment`]) and makes an id of it.
            pub fn new(s: &str) -> Result<Self, IdError> {
                validate_segment(s)?;
                let mut inner = IdString::new();
                // Cannot fail: the length was checked above.
                inner.push_str(s).map_err(|_| IdError::TooLong { len: s.len() })?;
                Ok(Self(inner))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<IdString> for $name {
            type Error = IdError;
            fn try_from(s: IdString) -> Result<Self, IdError> {
                validate_segment(&s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for IdString {
            fn from(id: $name) -> IdString {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

id_type!(
    /// A site: one data center, watched by one or more gateways (`paris-1`).
    SiteId
);
id_type!(
    /// A zone inside a site: a hall, a battery room, a power train (`hall-a`).
    ZoneId
);
id_type!(
    /// A device the gateway reads: a UPS, a PDU, a sensor node (`ups-a1`).
    DeviceId
);
id_type!(
    /// A gateway instance; `seq` numbers are per gateway (`gw-paris-1a`).
    GatewayId
);
id_type!(
    /// An incident: the escalation a trigger belongs to, from the first `watch` to `normal`.
    IncidentId
);
id_type!(
    /// A policy rule, named in a trigger's reasons (`rack-temp-rise`).
    RuleId
);
id_type!(
    /// The id of a signing key, named in a signed trigger.
    KeyId
);

impl IncidentId {
    /// The id of an incident a gateway opens at `at_ms`: `{gateway}-{at_ms}`, the gateway's id
    /// cut to 40 bytes (on a character boundary) so the whole always fits. Always valid: a
    /// gateway id has no forbidden character, and neither have `-` and digits.
    pub fn starting(gateway: &GatewayId, at_ms: u64) -> IncidentId {
        let mut s = IdString::new();
        for ch in gateway.as_str().chars() {
            if s.len() + ch.len_utf8() > 40 || s.push(ch).is_err() {
                break;
            }
        }
        // 40 + 1 + 20 digits of a u64 <= MAX_ID_LEN: these pushes cannot fail.
        let _ = s.push('-');
        let _ = fmt::Write::write_fmt(&mut s, format_args!("{at_ms}"));
        IncidentId(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn incident_ids_always_fit() {
        let long = GatewayId::new(&"é".repeat(32)).unwrap();
        let id = IncidentId::starting(&long, u64::MAX);
        assert!(validate_segment(id.as_str()).is_ok());
        assert!(id.as_str().ends_with("-18446744073709551615"));
        let gw = GatewayId::new("gw-1").unwrap();
        assert_eq!(IncidentId::starting(&gw, 1700).as_str(), "gw-1-1700");
    }

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["paris-1", "Hall A", "ups.a1", "é", &"x".repeat(MAX_ID_LEN)] {
            assert_eq!(validate_segment(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn rejects_what_breaks_a_topic() {
        assert_eq!(validate_segment(""), Err(IdError::Empty));
        assert_eq!(
            validate_segment(&"x".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong {
                len: MAX_ID_LEN + 1
            })
        );
        assert_eq!(
            validate_segment("a/b"),
            Err(IdError::Forbidden { ch: '/', at: 1 })
        );
        assert_eq!(
            validate_segment("ab+"),
            Err(IdError::Forbidden { ch: '+', at: 2 })
        );
        assert_eq!(
            validate_segment("#"),
            Err(IdError::Forbidden { ch: '#', at: 0 })
        );
        assert_eq!(
            validate_segment("a\0"),
            Err(IdError::Forbidden { ch: '\0', at: 1 })
        );
        assert_eq!(
            validate_segment("a\nb"),
            Err(IdError::Forbidden { ch: '\n', at: 1 })
        );
    }

    #[test]
    fn error_names_the_problem() {
        let e = SiteId::new("paris/1").unwrap_err();
        assert_eq!(e.to_string(), "contains forbidden character '/' at byte 5");
    }
}
