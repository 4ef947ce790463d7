//! The MQTT topic layout, built by functions from validated parts.
//!
//! ```text
//! firebreak/v1/{site}/state                      retained current site level
//! firebreak/v1/{site}/triggers                   every level change (site and zones)
//! firebreak/v1/{site}/zones/{zone}/state         retained current zone level
//! firebreak/v1/{site}/telemetry/{device}         a device's latest samples
//! firebreak/v1/{site}/gateways/{gateway}/status  retained gateway status; the will says offline
//! firebreak/v1/{site}/drill/{gateway}            a gateway's drills (never a level; not retained)
//! ```

use core::fmt;

use crate::id::{DeviceId, GatewayId, MAX_ID_LEN, SiteId, ZoneId};

/// The first two levels of every topic.
pub const ROOT: &str = "firebreak/v1";

/// The longest topic the layout produces.
pub const MAX_TOPIC_LEN: usize = ROOT.len() + 3 * (MAX_ID_LEN + 1) + "/gateways/status".len();

/// A topic name.
pub type TopicString = heapless::String<MAX_TOPIC_LEN>;

fn build(parts: &[&str]) -> TopicString {
    let mut t = TopicString::new();
    // Cannot overflow: MAX_TOPIC_LEN is the longest layout with the longest ids.
    let _ = t.push_str(ROOT);
    for p in parts {
        let _ = t.push('/');
        let _ = t.push_str(p);
    }
    t
}

/// `firebreak/v1/{site}/state`: retained, the site's current level.
pub fn site_state(site: &SiteId) -> TopicString {
    build(&[site.as_str(), "state"])
}

/// `firebreak/v1/{site}/triggers`: every level change of the site or one of its zones.
pub fn triggers(site: &SiteId) -> TopicString {
    build(&[site.as_str(), "triggers"])
}

/// `firebreak/v1/{site}/zones/{zone}/state`: retained, the zone's current level.
pub fn zone_state(site: &SiteId, zone: &ZoneId) -> TopicString {
    build(&[site.as_str(), "zones", zone.as_str(), "state"])
}

/// `firebreak/v1/{site}/telemetry/{device}`: a device's latest samples.
pub fn telemetry(site: &SiteId, device: &DeviceId) -> TopicString {
    build(&[site.as_str(), "telemetry", device.as_str()])
}

/// `firebreak/v1/{site}/gateways/{gateway}/status`: retained; the will message says offline.
pub fn gateway_status(site: &SiteId, gateway: &GatewayId) -> TopicString {
    build(&[site.as_str(), "gateways", gateway.as_str(), "status"])
}

/// `firebreak/v1/{site}/drill/{gateway}`: the gateway's drills (`firebreak drill`), not
/// retained. Outside every filter a controller uses for levels (`triggers`, `state`,
/// `zones/+/state`): only `firebreak/v1/{site}/#` (or `drill/+`) sees them.
pub fn drill(site: &SiteId, gateway: &GatewayId) -> TopicString {
    build(&[site.as_str(), "drill", gateway.as_str()])
}

/// A subscription filter for the drills of every gateway of one site:
/// `firebreak/v1/{site}/drill/+`.
pub fn drills_filter(site: &SiteId) -> TopicString {
    build(&[site.as_str(), "drill", "+"])
}

/// A subscription filter for every zone state of one site: `firebreak/v1/{site}/zones/+/state`.
pub fn zone_states_filter(site: &SiteId) -> TopicString {
    build(&[site.as_str(), "zones", "+", "state"])
}

/// A subscription filter for every gateway status of one site:
/// `firebreak/v1/{site}/gateways/+/status`.
pub fn gateway_statuses_filter(site: &SiteId) -> TopicString {
    build(&[site.as_str(), "gateways", "+", "status"])
}

/// A subscription filter for every site's triggers: `firebreak/v1/+/triggers`.
pub const ALL_TRIGGERS_FILTER: &str = "firebreak/v1/+/triggers";

/// A subscription filter for everything about one site: `firebreak/v1/{site}/#`.
pub fn site_filter(site: &SiteId) -> TopicString {
    build(&[site.as_str(), "#"])
}

/// A topic of the layout, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topic {
    /// `firebreak/v1/{site}/state`.
    SiteState(SiteId),
    /// `firebreak/v1/{site}/triggers`.
    Triggers(SiteId),
    /// `firebreak/v1/{site}/zones/{zone}/state`.
    ZoneState(SiteId, ZoneId),
    /// `firebreak/v1/{site}/telemetry/{device}`.
    Telemetry(SiteId, DeviceId),
    /// `firebreak/v1/{site}/gateways/{gateway}/status`.
    GatewayStatus(SiteId, GatewayId),
    /// `firebreak/v1/{site}/drill/{gateway}`.
    Drill(SiteId, GatewayId),
}

/// Why a topic name is not one of the layout's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// It does not start with `firebreak/v1/`.
    NotFirebreak,
    /// A segment is not a valid id.
    BadSegment {
        /// The segment's index, counting `firebreak` as 0.
        index: usize,
        /// Why.
        error: crate::IdError,
    },
    /// The segments do not form any topic of the layout.
    UnknownLayout,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFirebreak => write!(f, "topic does not start with {ROOT}/"),
            Self::BadSegment { index, error } => write!(f, "topic segment {index} {error}"),
            Self::UnknownLayout => f.write_str("topic is not part of the firebreak/v1 layout"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TopicError {}

impl Topic {
    /// Parses a topic name.
    pub fn parse(name: &str) -> Result<Topic, TopicError> {
        let rest = name
            .strip_prefix(ROOT)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(TopicError::NotFirebreak)?;
        let mut parts: heapless::Vec<&str, 5> = heapless::Vec::new();
        for p in rest.split('/') {
            parts.push(p).map_err(|_| TopicError::UnknownLayout)?;
        }
        let id = |i: usize| -> Result<&str, TopicError> {
            let s = parts.get(i).copied().ok_or(TopicError::UnknownLayout)?;
            crate::id::validate_segment(s).map_err(|error| TopicError::BadSegment {
                index: i + 2,
                error,
            })?;
            Ok(s)
        };
        let site = || id(0).and_then(|s| SiteId::new(s).map_err(|_| TopicError::UnknownLayout));
        let word = |i: usize| parts.get(i).copied();
        let topic = match (parts.len(), word(1), word(2), word(3)) {
            (2, Some("state"), _, _) => Topic::SiteState(site()?),
            (2, Some("triggers"), _, _) => Topic::Triggers(site()?),
            (4, Some("zones"), _, Some("state")) => Topic::ZoneState(site()?, parse_id(id(2)?)?),
            (3, Some("telemetry"), _, _) => Topic::Telemetry(site()?, parse_id(id(2)?)?),
            (3, Some("drill"), _, _) => Topic::Drill(site()?, parse_id(id(2)?)?),
            (4, Some("gateways"), _, Some("status")) => {
                Topic::GatewayStatus(site()?, parse_id(id(2)?)?)
            }
            _ => return Err(TopicError::UnknownLayout),
        };
        Ok(topic)
    }

    /// The topic name.
    pub fn name(&self) -> TopicString {
        match self {
            Topic::SiteState(s) => site_state(s),
            Topic::Triggers(s) => triggers(s),
            Topic::ZoneState(s, z) => zone_state(s, z),
            Topic::Telemetry(s, d) => telemetry(s, d),
            Topic::GatewayStatus(s, g) => gateway_status(s, g),
            Topic::Drill(s, g) => drill(s, g),
        }
    }
}

fn parse_id<T: core::str::FromStr>(s: &str) -> Result<T, TopicError> {
    s.parse().map_err(|_| TopicError::UnknownLayout)
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn site() -> SiteId {
        SiteId::new("paris-1").unwrap()
    }

    #[test]
    fn layout() {
        let zone = ZoneId::new("battery-room").unwrap();
        let dev = DeviceId::new("ups-a1").unwrap();
        let gw = GatewayId::new("gw-1").unwrap();
        assert_eq!(site_state(&site()), "firebreak/v1/paris-1/state");
        assert_eq!(triggers(&site()), "firebreak/v1/paris-1/triggers");
        assert_eq!(
            zone_state(&site(), &zone),
            "firebreak/v1/paris-1/zones/battery-room/state"
        );
        assert_eq!(
            telemetry(&site(), &dev),
            "firebreak/v1/paris-1/telemetry/ups-a1"
        );
        assert_eq!(
            gateway_status(&site(), &gw),
            "firebreak/v1/paris-1/gateways/gw-1/status"
        );
        assert_eq!(site_filter(&site()), "firebreak/v1/paris-1/#");
        assert_eq!(
            zone_states_filter(&site()),
            "firebreak/v1/paris-1/zones/+/state"
        );
    }

    /// MQTT's topic matching (`+` one level, `#` the rest), for the test below.
    fn matches(filter: &str, topic: &str) -> bool {
        let (mut f, mut t) = (filter.split('/'), topic.split('/'));
        loop {
            match (f.next(), t.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    /// A drill is never where a controller looks for levels: no filter the contract gives
    /// for triggers and states (those `firebreak watch` and older controllers subscribe to)
    /// matches the drill topic; only the site's `#` and the drill filter do.
    #[test]
    fn drills_stay_off_the_level_topics() {
        let gw = GatewayId::new("gw-1").unwrap();
        let d = drill(&site(), &gw);
        assert_eq!(d, "firebreak/v1/paris-1/drill/gw-1");
        for filter in [
            triggers(&site()),
            site_state(&site()),
            zone_states_filter(&site()),
            gateway_statuses_filter(&site()),
        ] {
            assert!(!matches(&filter, &d), "{filter} matches {d}");
        }
        assert!(!matches(ALL_TRIGGERS_FILTER, &d));
        assert!(matches(&site_filter(&site()), &d));
        assert!(matches(&drills_filter(&site()), &d));
        assert!(matches(
            &zone_states_filter(&site()),
            "firebreak/v1/paris-1/zones/z/state"
        ));
    }

    #[test]
    fn longest_ids_fit() {
        let long = "x".repeat(MAX_ID_LEN);
        let t = gateway_status(
            &SiteId::new(&long).unwrap(),
            &GatewayId::new(&long).unwrap(),
        );
        assert_eq!(
            t.len(),
            ROOT.len() + 2 * (MAX_ID_LEN + 1) + "/gateways/status".len()
        );
    }

    #[test]
    fn parse_round_trips_and_rejects() {
        for t in [
            Topic::SiteState(site()),
            Topic::Triggers(site()),
            Topic::ZoneState(site(), ZoneId::new("z").unwrap()),
            Topic::Telemetry(site(), DeviceId::new("d").unwrap()),
            Topic::GatewayStatus(site(), GatewayId::new("g").unwrap()),
            Topic::Drill(site(), GatewayId::new("g").unwrap()),
        ] {
            assert_eq!(Topic::parse(&t.name()), Ok(t));
        }
        assert_eq!(
            Topic::parse("other/v1/x/state"),
            Err(TopicError::NotFirebreak)
        );
        assert_eq!(
            Topic::parse("firebreak/v1/x/stat"),
            Err(TopicError::UnknownLayout)
        );
        assert_eq!(
            Topic::parse("firebreak/v1/x/state/more"),
            Err(TopicError::UnknownLayout)
        );
        assert!(matches!(
            Topic::parse("firebreak/v1/+/state"),
            Err(TopicError::BadSegment { index: 2, .. })
        ));
        assert!(matches!(
            Topic::parse("firebreak/v1//triggers"),
            Err(TopicError::BadSegment { index: 2, .. })
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "(firebreak/v1/)?[a-z/+#\\x00]{0,40}") {
            let _ = Topic::parse(&s);
        }
    }
}
