//! A controller's view of one site watched by several gateways.
//!
//! Several gateways may watch one site (A/B gateways, each with its own id, key, outbox and
//! power), each with its own `seq` and its own levels. A controller acts on their **merge**:
//!
//! - the level of the site, and of each zone, is the **highest** level any trusted gateway
//!   reports for it; so a lowering takes effect only when **every** gateway that raised it
//!   has lowered it. A gateway that falls silent keeps what it last reported: silence never
//!   lowers a level;
//! - a gateway is **stale** when nothing was heard from it (an accepted trigger or state, an
//!   `online` status) for [`MergeOptions::stale_after_heartbeats`] of its heartbeats, or when
//!   every connection it was seen with (one per broker) is `offline` (its will); it is
//!   **live** again when heard;
//! - **every** gateway of the site stale while the site or a zone is at `prepare` or above is
//!   the verdict [`MergeEvent::SiteSilentDuringAlarm`]: the witness and the patient may both be
//!   gone, and a runbook can fail over on it;
//! - two live gateways reporting different levels for one scope for longer than
//!   [`MergeOptions::disagree_after_ms`] is [`MergeEvent::Disagree`] (and
//!   [`MergeEvent::Agree`] when they agree again): one of them sees what the other does not
//!   (a cut bus, a dead probe), which people should look at.
//!
//! [`Merger`] holds that view; it is fed what a [`Verifier`](super::Verifier) accepted
//! (triggers, retained states and statuses) and ticked with the controller's clock, and it
//! returns what changed. `firebreak watch` prints these events and runs `--exec` on the merged
//! level changes and on `site-silent-during-alarm`.

use std::collections::{BTreeMap, BTreeSet};

use firebreak_protocols::{GatewayId, GatewayStatus, Level, Presence, SiteId, Trigger, ZoneId};

/// When a gateway counts as stale, and two as disagreeing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeOptions {
    /// A gateway silent for this many heartbeats is stale (3).
    pub stale_after_heartbeats: u64,
    /// The heartbeat assumed until a gateway's status states its own (10 s, the gateways'
    /// default).
    pub default_heartbeat_ms: u64,
    /// Two live gateways reporting different levels for one scope this long are reported
    /// (120 s: longer than the hold time a gateway lowers after, and than the seconds by
    /// which two gateways reading the same devices at different moments may differ).
    pub disagree_after_ms: u64,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            stale_after_heartbeats: super::SILENT_AFTER_HEARTBEATS,
            default_heartbeat_ms: 10_000,
            disagree_after_ms: 120_000,
        }
    }
}

/// A scope of a site: the site as a whole (`None`) or one zone.
pub type Scope = Option<ZoneId>;

/// What changed in the merged view.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeEvent {
    /// The merged level of a scope changed.
    Level {
        /// The scope.
        scope: Scope,
        /// The new merged level.
        level: Level,
        /// The merged level before.
        previous: Level,
        /// The gateway whose trigger or state changed it.
        by: GatewayId,
        /// Every gateway's level for the scope now.
        levels: Vec<(GatewayId, Level)>,
    },
    /// A gateway was not heard for its stale time, or every broker said it is offline.
    Stale {
        /// The gateway.
        gateway: GatewayId,
        /// Why: `silent for N s` or `offline`.
        why: String,
    },
    /// A stale gateway was heard again.
    Live {
        /// The gateway.
        gateway: GatewayId,
    },
    /// Every gateway of the site is stale while a scope is at `prepare` or above.
    SiteSilentDuringAlarm {
        /// The highest merged level held.
        level: Level,
        /// The gateways, all stale.
        gateways: Vec<GatewayId>,
    },
    /// After [`MergeEvent::SiteSilentDuringAlarm`], a gateway of the site was heard again.
    SiteHeardAgain {
        /// The gateway heard.
        gateway: GatewayId,
    },
    /// Live gateways have reported different levels for a scope for the disagreement time.
    Disagree {
        /// The scope.
        scope: Scope,
        /// Each live gateway's level.
        levels: Vec<(GatewayId, Level)>,
        /// For how long, in milliseconds.
        for_ms: u64,
    },
    /// After [`MergeEvent::Disagree`], the live gateways agree again.
    Agree {
        /// The scope.
        scope: Scope,
        /// The level they agree on.
        level: Level,
    },
}

impl MergeEvent {
    /// A short machine name: `level`, `stale`, `live`, `site-silent-during-alarm`,
    /// `site-heard-again`, `disagree`, `agree`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Level { .. } => "level",
            Self::Stale { .. } => "stale",
            Self::Live { .. } => "live",
            Self::SiteSilentDuringAlarm { .. } => "site-silent-during-alarm",
            Self::SiteHeardAgain { .. } => "site-heard-again",
            Self::Disagree { .. } => "disagree",
            Self::Agree { .. } => "agree",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct GatewayView {
    levels: BTreeMap<Scope, Level>,
    /// The controller's clock when it was last heard (or when the merger learned of it).
    heard_ms: u64,
    heartbeat_ms: Option<u64>,
    /// Per connection (`epoch`, `session`) of its latest boot, its latest presence.
    sessions: BTreeMap<(u64, u64), Presence>,
    stale: bool,
}

impl GatewayView {
    fn offline_everywhere(&self) -> bool {
        !self.sessions.is_empty() && self.sessions.values().all(|p| *p == Presence::Offline)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Disagreement {
    since_ms: u64,
    reported: bool,
}

/// The merged view of one site (see the module docs).
#[derive(Debug, Clone)]
pub struct Merger {
    site: SiteId,
    options: MergeOptions,
    gateways: BTreeMap<GatewayId, GatewayView>,
    merged: BTreeMap<Scope, Level>,
    disagreements: BTreeMap<Scope, Disagreement>,
    silent_alarm: bool,
}

impl Merger {
    /// A view of `site`, knowing no gateway yet.
    pub fn new(site: SiteId, options: MergeOptions) -> Merger {
        Merger {
            site,
            options,
            gateways: BTreeMap::new(),
            merged: BTreeMap::new(),
            disagreements: BTreeMap::new(),
            silent_alarm: false,
        }
    }

    /// Expects `gateway` (one a trust file grants the site), from `now_ms` on: if it is never
    /// heard, it turns stale after its stale time like any other.
    pub fn expect(&mut self, gateway: GatewayId, now_ms: u64) {
        self.gateways.entry(gateway).or_insert_with(|| GatewayView {
            heard_ms: now_ms,
            ..GatewayView::default()
        });
    }

    /// The site watched.
    pub fn site(&self) -> &SiteId {
        &self.site
    }

    /// The merged level of `scope` (`normal` when no gateway reported it).
    pub fn level(&self, scope: &Scope) -> Level {
        self.merged.get(scope).copied().unwrap_or(Level::Normal)
    }

    /// The gateways known, with whether each is stale.
    pub fn gateways(&self) -> impl Iterator<Item = (&GatewayId, bool)> {
        self.gateways.iter().map(|(g, v)| (g, v.stale))
    }

    /// A trigger accepted: its gateway's level for its scope, and a sign of its life.
    pub fn on_trigger(&mut self, t: &Trigger, now_ms: u64) -> Vec<MergeEvent> {
        self.on_level(t, true, now_ms)
    }

    /// A retained state taken: its gateway's level for its scope. It is as old as the last
    /// change, so it is no sign of life.
    pub fn on_state(&mut self, t: &Trigger, now_ms: u64) -> Vec<MergeEvent> {
        self.on_level(t, false, now_ms)
    }

    fn on_level(&mut self, t: &Trigger, alive: bool, now_ms: u64) -> Vec<MergeEvent> {
        if t.site != self.site {
            return Vec::new();
        }
        self.expect(t.gateway.clone(), now_ms);
        let mut events = if alive {
            self.heard(&t.gateway, now_ms)
        } else {
            Vec::new()
        };
        let view = self.gateways.entry(t.gateway.clone()).or_default();
        view.levels.insert(t.zone.clone(), t.level);
        let scope = t.zone.clone();
        let previous = self.level(&scope);
        let level = self
            .gateways
            .values()
            .filter_map(|v| v.levels.get(&scope))
            .copied()
            .max()
            .unwrap_or(Level::Normal);
        if level != previous {
            self.merged.insert(scope.clone(), level);
            events.push(MergeEvent::Level {
                levels: self.levels_of(&scope, false),
                scope,
                level,
                previous,
                by: t.gateway.clone(),
            });
        }
        events.extend(self.tick(now_ms));
        events
    }

    /// A status accepted; `silent` when the verifier found an `online` status older than
    /// three heartbeats (a retained one, whose gateway said nothing since): it is not a sign
    /// of life.
    pub fn on_status(&mut self, s: &GatewayStatus, silent: bool, now_ms: u64) -> Vec<MergeEvent> {
        if s.site != self.site {
            return Vec::new();
        }
        let mut events = Vec::new();
        self.expect(s.gateway.clone(), now_ms);
        let view = self.gateways.entry(s.gateway.clone()).or_default();
        let connection = (s.epoch.unwrap_or(0), s.session.unwrap_or(0));
        // A new boot: the connections of the earlier ones are gone.
        view.sessions.retain(|(epoch, _), _| *epoch >= connection.0);
        view.sessions.insert(connection, s.state);
        // Bounded: a gateway that reconnected often keeps its latest connections only.
        while view.sessions.len() > 64 {
            view.sessions.pop_first();
        }
        if let Some(h) = s.heartbeat_s {
            view.heartbeat_ms = Some(u64::from(h.max(1)) * 1000);
        }
        if s.state == Presence::Online && !silent {
            events.extend(self.heard(&s.gateway, now_ms));
        }
        events.extend(self.tick(now_ms));
        events
    }

    /// What the passing of time changed: stale gateways, a silent site, disagreements.
    pub fn tick(&mut self, now_ms: u64) -> Vec<MergeEvent> {
        let mut events = Vec::new();
        let options = self.options;
        for (gateway, view) in &mut self.gateways {
            let heartbeat = view.heartbeat_ms.unwrap_or(options.default_heartbeat_ms);
            let after = options.stale_after_heartbeats.saturating_mul(heartbeat);
            let silent_ms = now_ms.saturating_sub(view.heard_ms);
            let why = if view.offline_everywhere() {
                Some(
                    "offline (its will, or a clean stop, on every connection it was seen with)"
                        .into(),
                )
            } else if silent_ms > after {
                Some(format!(
                    "silent for {} s ({} heartbeats of {} s)",
                    silent_ms / 1000,
                    options.stale_after_heartbeats,
                    heartbeat / 1000
                ))
            } else {
                None
            };
            if let Some(why) = why.filter(|_| !view.stale) {
                view.stale = true;
                events.push(MergeEvent::Stale {
                    gateway: gateway.clone(),
                    why,
                });
            }
        }
        let alarm = self.merged.values().copied().max().unwrap_or(Level::Normal);
        let all_stale = !self.gateways.is_empty() && self.gateways.values().all(|v| v.stale);
        if all_stale && alarm >= Level::Prepare && !self.silent_alarm {
            self.silent_alarm = true;
            events.push(MergeEvent::SiteSilentDuringAlarm {
                level: alarm,
                gateways: self.gateways.keys().cloned().collect(),
            });
        }
        let scopes: BTreeSet<Scope> = self
            .gateways
            .values()
            .flat_map(|v| v.levels.keys().cloned())
            .collect();
        for scope in scopes {
            let live = self.levels_of(&scope, true);
            let differ = live
                .first()
                .is_some_and(|(_, first)| live.iter().any(|(_, l)| l != first));
            match (differ, self.disagreements.get(&scope).copied()) {
                (true, None) => {
                    self.disagreements.insert(
                        scope,
                        Disagreement {
                            since_ms: now_ms,
                            reported: false,
                        },
                    );
                }
                (true, Some(d)) if !d.reported => {
                    let for_ms = now_ms.saturating_sub(d.since_ms);
                    if for_ms >= options.disagree_after_ms {
                        self.disagreements.insert(
                            scope.clone(),
                            Disagreement {
                                reported: true,
                                ..d
                            },
                        );
                        events.push(MergeEvent::Disagree {
                            scope,
                            levels: live,
                            for_ms,
                        });
                    }
                }
                (false, Some(d)) => {
                    self.disagreements.remove(&scope);
                    if d.reported {
                        let level = live.first().map_or(Level::Normal, |(_, l)| *l);
                        events.push(MergeEvent::Agree { scope, level });
                    }
                }
                _ => {}
            }
        }
        events
    }

    /// Each gateway's level for `scope` (`normal` when it reported none), the live ones only
    /// when `live_only`.
    fn levels_of(&self, scope: &Scope, live_only: bool) -> Vec<(GatewayId, Level)> {
        self.gateways
            .iter()
            .filter(|(_, v)| !live_only || !v.stale)
            .map(|(g, v)| {
                (
                    g.clone(),
                    v.levels.get(scope).copied().unwrap_or(Level::Normal),
                )
            })
            .collect()
    }

    /// `gateway` was heard at `now_ms`.
    fn heard(&mut self, gateway: &GatewayId, now_ms: u64) -> Vec<MergeEvent> {
        let mut events = Vec::new();
        let view = self.gateways.entry(gateway.clone()).or_default();
        view.heard_ms = view.heard_ms.max(now_ms);
        if view.stale && !view.offline_everywhere() {
            view.stale = false;
            events.push(MergeEvent::Live {
                gateway: gateway.clone(),
            });
            if self.silent_alarm {
                self.silent_alarm = false;
                events.push(MergeEvent::SiteHeardAgain {
                    gateway: gateway.clone(),
                });
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_protocols::IncidentId;

    const T0: u64 = 1_700_000_000_000;

    fn gw(s: &str) -> GatewayId {
        GatewayId::new(s).unwrap()
    }

    fn site() -> SiteId {
        SiteId::new("paris-1").unwrap()
    }

    fn trigger(g: &str, zone: Option<&str>, level: Level, previous: Level, at: u64) -> Trigger {
        Trigger::new(
            gw(g),
            at,
            IncidentId::new("i").unwrap(),
            site(),
            zone.map(|z| ZoneId::new(z).unwrap()),
            level,
            previous,
            at,
        )
        .unwrap()
    }

    fn status(g: &str, state: Presence, at: u64) -> GatewayStatus {
        connection(g, state, 1, at)
    }

    fn connection(g: &str, state: Presence, session: u64, at: u64) -> GatewayStatus {
        let mut s = GatewayStatus::new(gw(g), site(), state, "0.1.0", 1, 1, at);
        s.heartbeat_s = Some(10);
        s.epoch = Some(T0 / 1000);
        s.session = Some(session);
        s.beat = Some(0);
        s
    }

    fn kinds(events: &[MergeEvent]) -> Vec<&'static str> {
        events.iter().map(MergeEvent::kind).collect()
    }

    fn levels(events: &[MergeEvent]) -> Vec<(Level, Level)> {
        events
            .iter()
            .filter_map(|e| match e {
                MergeEvent::Level {
                    level, previous, ..
                } => Some((*level, *previous)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_highest_level_holds_until_every_gateway_that_raised_it_lowers_it() {
        use Level::*;
        let mut m = Merger::new(site(), MergeOptions::default());
        let z = Some("b1");
        let e = m.on_trigger(&trigger("gw-a", z, Prepare, Normal, T0), T0);
        assert_eq!(levels(&e), [(Prepare, Normal)]);
        // B reaches prepare later, then evacuate: the merged level follows the highest.
        assert!(
            levels(&m.on_trigger(&trigger("gw-b", z, Prepare, Normal, T0 + 1), T0 + 1)).is_empty()
        );
        let e = m.on_trigger(&trigger("gw-b", z, Evacuate, Prepare, T0 + 2), T0 + 2);
        assert_eq!(levels(&e), [(Evacuate, Prepare)]);
        // A evacuates too, then B lowers: still evacuate, A holds it.
        assert!(
            levels(&m.on_trigger(&trigger("gw-a", z, Evacuate, Prepare, T0 + 3), T0 + 3))
                .is_empty()
        );
        assert!(
            levels(&m.on_trigger(&trigger("gw-b", z, Watch, Evacuate, T0 + 4), T0 + 4)).is_empty()
        );
        assert_eq!(m.level(&Some(ZoneId::new("b1").unwrap())), Evacuate);
        // A lowers: the merged level comes down, to the highest left (B's watch).
        let e = m.on_trigger(&trigger("gw-a", z, Normal, Evacuate, T0 + 5), T0 + 5);
        assert_eq!(levels(&e), [(Watch, Evacuate)]);
        // The site as a whole is another scope.
        assert_eq!(m.level(&None), Normal);
    }

    #[test]
    fn a_silent_gateway_turns_stale_and_keeps_its_level_and_all_silent_in_alarm_is_reported_once() {
        use Level::*;
        let mut m = Merger::new(site(), MergeOptions::default());
        m.expect(gw("gw-a"), T0);
        m.expect(gw("gw-b"), T0);
        m.on_status(&status("gw-a", Presence::Online, T0), false, T0);
        m.on_status(&status("gw-b", Presence::Online, T0), false, T0);
        m.on_trigger(
            &trigger("gw-a", None, Prepare, Normal, T0 + 1_000),
            T0 + 1_000,
        );
        // B's heartbeats keep coming; A says nothing for 3 heartbeats.
        for t in (10_000..=30_000).step_by(10_000) {
            assert!(
                kinds(&m.on_status(&status("gw-b", Presence::Online, T0 + t), false, T0 + t))
                    .is_empty()
            );
        }
        let e = m.tick(T0 + 31_500);
        assert_eq!(kinds(&e), ["stale"], "{e:?}");
        // Silence never lowers: A's prepare holds.
        assert_eq!(m.level(&None), Prepare);
        // B goes silent too (its will): every gateway silent while at prepare.
        let e = m.on_status(&status("gw-b", Presence::Offline, T0), false, T0 + 32_000);
        assert_eq!(kinds(&e), ["stale", "site-silent-during-alarm"], "{e:?}");
        assert!(m.tick(T0 + 60_000).is_empty(), "reported once");
        // A is heard again: live, and the site is heard.
        let e = m.on_status(
            &status("gw-a", Presence::Online, T0 + 61_000),
            false,
            T0 + 61_000,
        );
        assert_eq!(kinds(&e), ["live", "site-heard-again"], "{e:?}");
    }

    #[test]
    fn silence_at_normal_is_not_an_alarm_and_a_gateway_online_elsewhere_is_not_stale() {
        let mut m = Merger::new(site(), MergeOptions::default());
        m.on_status(&connection("gw-a", Presence::Online, 1, T0), false, T0);
        m.on_status(&connection("gw-a", Presence::Online, 2, T0), false, T0);
        // Its connection to one broker died (its will); the other still says online.
        let e = m.on_status(&connection("gw-a", Presence::Offline, 1, T0), false, T0 + 1);
        assert!(e.is_empty(), "{e:?}");
        let e = m.on_status(&connection("gw-a", Presence::Offline, 2, T0), false, T0 + 2);
        assert_eq!(kinds(&e), ["stale"], "silent at normal: no site verdict");
    }

    #[test]
    fn a_disagreement_longer_than_its_time_is_reported_then_its_end() {
        use Level::*;
        let mut m = Merger::new(site(), MergeOptions::default());
        m.on_status(&status("gw-a", Presence::Online, T0), false, T0);
        m.on_status(&status("gw-b", Presence::Online, T0), false, T0);
        m.on_trigger(&trigger("gw-a", None, Prepare, Normal, T0), T0);
        // B follows 5 s later: no disagreement reported.
        m.on_trigger(
            &trigger("gw-b", None, Prepare, Normal, T0 + 5_000),
            T0 + 5_000,
        );
        m.on_trigger(
            &trigger("gw-a", None, Evacuate, Prepare, T0 + 6_000),
            T0 + 6_000,
        );
        let mut seen = Vec::new();
        for t in (7_000..=126_000).step_by(1_000) {
            for g in ["gw-a", "gw-b"] {
                seen.extend(m.on_status(&status(g, Presence::Online, T0 + t), false, T0 + t));
            }
        }
        assert_eq!(kinds(&seen), ["disagree"], "{seen:?}");
        let e = m.on_trigger(
            &trigger("gw-b", None, Evacuate, Prepare, T0 + 127_000),
            T0 + 127_000,
        );
        assert_eq!(kinds(&e), ["agree"], "{e:?}");
    }

    proptest::proptest! {
        /// Whatever the gateways say, in whatever order: the merged level is the highest any
        /// of them last said, and a `level` event comes exactly when it changes.
        #[test]
        fn the_merged_level_is_the_highest_last_said(
            steps in proptest::collection::vec((0usize..3, 0u8..4, proptest::bool::ANY), 1..60)
        ) {
            let all = [Level::Normal, Level::Watch, Level::Prepare, Level::Evacuate];
            let names = ["gw-a", "gw-b", "gw-c"];
            let mut m = Merger::new(site(), MergeOptions::default());
            let mut last = [Level::Normal; 3];
            for (i, (g, level, state)) in steps.into_iter().enumerate() {
                let level = all[usize::from(level)];
                let previous = if last[g] == level { Level::Watch } else { last[g] };
                if previous == level {
                    continue;
                }
                let before = m.level(&None);
                let t = trigger(names[g], None, level, previous, T0 + i as u64);
                let events = if state { m.on_state(&t, T0) } else { m.on_trigger(&t, T0) };
                last[g] = level;
                let expected = last.iter().copied().max().unwrap_or(Level::Normal);
                proptest::prop_assert_eq!(m.level(&None), expected);
                let changes = levels(&events);
                if expected == before {
                    proptest::prop_assert!(changes.is_empty());
                } else {
                    proptest::prop_assert_eq!(changes, vec![(expected, before)]);
                }
            }
        }
    }

    #[test]
    fn another_sites_messages_change_nothing() {
        let mut m = Merger::new(site(), MergeOptions::default());
        let mut t = trigger("gw-a", None, Level::Evacuate, Level::Normal, T0);
        t.site = SiteId::new("lyon-2").unwrap();
        assert!(m.on_trigger(&t, T0).is_empty());
        assert_eq!(m.level(&None), Level::Normal);
    }
}
