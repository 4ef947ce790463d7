//! `[[events]]`: infrastructure events in time order, outages opened and closed in pairs.

use firebreak_protocols::DeviceId;

use super::Validator;
use crate::scenario::{
    Device, DeviceKind, Event, RawEvent, RawEventKind, RawScenario, RebootReason, ScenarioError,
    Window,
};
use crate::time::ScenarioTime;

impl Validator<'_> {
    pub(super) fn events(
        &self,
        raw: &RawScenario,
        devices: &mut [Device],
    ) -> Result<Vec<Event>, ScenarioError> {
        let mut events: Vec<Event> = Vec::new();
        // Open outages: the raw index of the event that began each one.
        let (mut broker_down, mut gateway_down): (Option<usize>, Option<usize>) = (None, None);
        let mut cut: Option<(usize, Vec<usize>, ScenarioTime)> = None;
        let mut previous: Option<(usize, ScenarioTime)> = None;
        for (i, e) in raw.events.iter().enumerate() {
            let at = format!("events[{i}]");
            self.within(&format!("{at}.at"), e.at, raw)?;
            if let Some((j, t)) = previous
                && e.at < t
            {
                return Err(self.err(
                    format!("{at}.at"),
                    format!(
                        "{} is before events[{j}] at {t}: list events in time order",
                        e.at
                    ),
                ));
            }
            previous = Some((i, e.at));
            if e.devices.is_some()
                && !matches!(e.kind, RawEventKind::NetworkCut | RawEventKind::NodeReboot)
            {
                return Err(self.err(
                    format!("{at}.devices"),
                    "only for kind \"network-cut\" or \"node-reboot\"",
                ));
            }
            if e.reason.is_some() && e.kind != RawEventKind::NodeReboot {
                return Err(self.err(format!("{at}.reason"), "only for kind \"node-reboot\""));
            }
            let toggle =
                |open: &mut Option<usize>, opening: bool, what: &str| match (*open, opening) {
                    (Some(j), true) => Err(self.err(
                        format!("{at}.kind"),
                        format!("the {what} is already down since events[{j}]"),
                    )),
                    (None, false) => Err(self.err(
                        format!("{at}.kind"),
                        format!("the {what} is not down: no stop before this restart"),
                    )),
                    (_, true) => {
                        *open = Some(i);
                        Ok(())
                    }
                    (_, false) => {
                        *open = None;
                        Ok(())
                    }
                };
            let mut cut_off: Vec<DeviceId> = Vec::new();
            match e.kind {
                RawEventKind::BrokerStop => toggle(&mut broker_down, true, "broker")?,
                RawEventKind::BrokerRestart => toggle(&mut broker_down, false, "broker")?,
                RawEventKind::GatewayKill => toggle(&mut gateway_down, true, "gateway")?,
                RawEventKind::GatewayRestart => toggle(&mut gateway_down, false, "gateway")?,
                RawEventKind::NetworkCut => {
                    if let Some((j, _, _)) = &cut {
                        return Err(self.err(
                            format!("{at}.kind"),
                            format!(
                                "the network is already cut since events[{j}]: restore it first"
                            ),
                        ));
                    }
                    let indices: Vec<usize> = match &e.devices {
                        None => (0..devices.len()).collect(),
                        Some(names) if names.is_empty() => {
                            return Err(self.err(
                                format!("{at}.devices"),
                                "is empty; leave it out to cut every device",
                            ));
                        }
                        Some(names) => {
                            let mut v = Vec::new();
                            for (k, n) in names.iter().enumerate() {
                                let d =
                                    self.device_index(&format!("{at}.devices[{k}]"), n, devices)?;
                                if v.contains(&d) {
                                    return Err(self.err(
                                        format!("{at}.devices[{k}]"),
                                        format!("{n:?} is listed twice"),
                                    ));
                                }
                                v.push(d);
                            }
                            v
                        }
                    };
                    cut_off = indices
                        .iter()
                        .filter_map(|&d| devices.get(d).map(|d| d.name.clone()))
                        .collect();
                    cut = Some((i, indices, e.at));
                }
                RawEventKind::NodeReboot => {
                    cut_off = self.rebooted(&at, e, devices)?;
                }
                RawEventKind::NetworkRestore => {
                    let Some((_, indices, from)) = cut.take() else {
                        return Err(self.err(
                            format!("{at}.kind"),
                            "the network is not cut: no network-cut before this restore",
                        ));
                    };
                    for d in indices {
                        if let Some(d) = devices.get_mut(d) {
                            d.network_cuts.push(Window {
                                from,
                                to: Some(e.at),
                            });
                        }
                    }
                }
            }
            events.push(Event {
                at: e.at,
                kind: e.kind,
                devices: cut_off,
                reason: (e.kind == RawEventKind::NodeReboot)
                    .then(|| e.reason.unwrap_or(RebootReason::Watchdog)),
            });
        }
        if let Some((_, indices, from)) = cut {
            for d in indices {
                if let Some(d) = devices.get_mut(d) {
                    d.network_cuts.push(Window { from, to: None });
                }
            }
        }
        Ok(events)
    }

    /// The nodes a `node-reboot` event names (every node when it names none).
    pub(super) fn rebooted(
        &self,
        at: &str,
        e: &RawEvent,
        devices: &[Device],
    ) -> Result<Vec<DeviceId>, ScenarioError> {
        let names: Vec<DeviceId> = match &e.devices {
            None => devices
                .iter()
                .filter(|d| d.kind == DeviceKind::Node)
                .map(|d| d.name.clone())
                .collect(),
            Some(names) => {
                let mut out: Vec<DeviceId> = Vec::new();
                for (k, n) in names.iter().enumerate() {
                    let path = format!("{at}.devices[{k}]");
                    let d = self.device_index(&path, n, devices)?;
                    let device = devices.get(d).ok_or_else(|| self.err(&path, "no device"))?;
                    if device.kind != DeviceKind::Node {
                        return Err(self.err(
                            path,
                            format!("{n:?} is a {}, not a node: only nodes reboot", device.kind),
                        ));
                    }
                    if out.contains(&device.name) {
                        return Err(self.err(path, format!("{n:?} is listed twice")));
                    }
                    out.push(device.name.clone());
                }
                out
            }
        };
        if names.is_empty() {
            return Err(self.err(
                format!("{at}.kind"),
                "node-reboot: the scenario has no node to reboot",
            ));
        }
        Ok(names)
    }
}
