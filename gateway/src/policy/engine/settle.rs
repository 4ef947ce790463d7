//! Settling levels: a zone rises at once and falls after the hold; the site follows its
//! highest zone; an incident spans the site's time away from `normal`.

use firebreak_protocols::message::MAX_REASONS;
use firebreak_protocols::{IncidentId, Level};

use super::{Engine, Instance, Transition};

impl Engine {
    pub(super) fn settle_zone(&mut self, z: usize, now_ms: u64, out: &mut Vec<Transition>) {
        let rules = &self.policy.rules.rules;
        let Some(zone) = self.zones.get(z) else {
            return;
        };
        let level_of = |pick: fn(&Instance) -> bool| {
            zone.instances
                .iter()
                .zip(rules)
                .filter(|(i, _)| pick(i))
                .filter_map(|(_, r)| r.level)
                .max()
                .unwrap_or(Level::Normal)
        };
        let up = level_of(|i| i.active);
        let hold = level_of(|i| i.holding).max(up);
        let current = zone.level;
        let hold_ms = self.policy.hold_ms;
        let Some(zone) = self.zones.get_mut(z) else {
            return;
        };
        // A level stays until nothing has held it for the hold time.
        let mut kept = hold;
        for (lvl, since) in [Level::Watch, Level::Prepare, Level::Evacuate]
            .into_iter()
            .zip(zone.clear_since.iter_mut())
        {
            if hold >= lvl {
                *since = None;
            } else if lvl <= current {
                let from = *since.get_or_insert(now_ms);
                if now_ms.saturating_sub(from) < hold_ms {
                    kept = kept.max(lvl);
                }
            } else {
                *since = None;
            }
        }
        let new = if up > current {
            Some(up)
        } else if kept < current {
            Some(kept)
        } else {
            None
        };
        let Some(level) = new else {
            return;
        };
        let reasons = self.zone_reasons(z, level);
        let incident = self.open_incident(now_ms);
        let Some(zone) = self.zones.get_mut(z) else {
            return;
        };
        zone.level = level;
        out.push(Transition {
            zone: Some(zone.id.clone()),
            level,
            previous: current,
            reasons,
            seconds_to_power_loss: zone.estimate_s.map(|e| e.max(0.0) as u32),
            at_ms: now_ms,
            incident,
        });
    }

    pub(super) fn settle_site(&mut self, now_ms: u64, out: &mut Vec<Transition>) {
        let level = self
            .zones
            .iter()
            .map(|z| z.level)
            .max()
            .unwrap_or(Level::Normal);
        if level == self.site_level {
            return;
        }
        let mut reasons = Vec::new();
        for z in 0..self.zones.len() {
            if self.zones.get(z).is_some_and(|zn| zn.level == level) {
                for r in self.zone_reasons(z, level) {
                    if reasons.len() < MAX_REASONS && !reasons.contains(&r) {
                        reasons.push(r);
                    }
                }
            }
        }
        let incident = self.open_incident(now_ms);
        out.push(Transition {
            zone: None,
            level,
            previous: self.site_level,
            reasons,
            seconds_to_power_loss: self.seconds_to_power_loss(),
            at_ms: now_ms,
            incident,
        });
        self.site_level = level;
        if level == Level::Normal {
            self.incident = None;
        }
    }

    pub(super) fn open_incident(&mut self, now_ms: u64) -> IncidentId {
        self.incident
            .get_or_insert_with(|| IncidentId::starting(&self.gateway, now_ms))
            .clone()
    }
}
