//! `[[events]]`: infrastructure events in time order, outages opened and closed in pairs.

use firebreak_protocols::DeviceId;

use super::Validator;
use crate::scenario::{
    Device, DeviceKind, Event, GatewaySpec, Maintenance, RawEvent, RawEventKind, RawScenario,
    RebootReason, ScenarioError, Window,
};
use crate::time::ScenarioTime;

impl Validator<'_> {
    pub(super) fn events(
        &self,
        raw: &RawScenario,
        devices: &mut [Device],
        gateways: &mut [GatewaySpec],
    ) -> Result<Vec<Event>, ScenarioError> {
        let mut events: Vec<Event> = Vec::new();
        // Open outages: the raw index of the event that began each one (and when).
        let mut broker_down: Option<usize> = None;
        let mut gateway_down: Vec<Option<usize>> = vec![None; gateways.len()];
        let mut net_cut: Vec<Option<(usize, ScenarioTime)>> = vec![None; gateways.len()];
        let mut bus_cut: Vec<Option<(usize, ScenarioTime)>> = vec![None; gateways.len()];
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
            let maintenance = self.maintenance(&at, e, devices)?;
            let targets = self.event_gateways(&at, e, gateways)?;
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
                RawEventKind::GatewayKill | RawEventKind::GatewayRestart => {
                    for &g in &targets {
                        let what = gateway_what(gateways, g, "");
                        if let Some(open) = gateway_down.get_mut(g) {
                            toggle(open, e.kind == RawEventKind::GatewayKill, &what)?;
                        }
                    }
                }
                RawEventKind::GatewayNetworkCut | RawEventKind::GatewayNetworkRestore => {
                    let cutting = e.kind == RawEventKind::GatewayNetworkCut;
                    self.cut_or_mend(
                        &at,
                        e.at,
                        i,
                        cutting,
                        &targets,
                        &mut net_cut,
                        gateways,
                        "network",
                        |g, w| g.network_cuts.push(w),
                    )?;
                }
                RawEventKind::BusCut | RawEventKind::BusRestore => {
                    if !devices.iter().any(|d| d.kind == DeviceKind::Node) {
                        return Err(self.err(
                            format!("{at}.kind"),
                            format!(
                                "{}: the scenario has no device of kind \"node\" (a bus is a gateway's RS-485 line to the nodes)",
                                e.kind
                            ),
                        ));
                    }
                    let cutting = e.kind == RawEventKind::BusCut;
                    self.cut_or_mend(
                        &at,
                        e.at,
                        i,
                        cutting,
                        &targets,
                        &mut bus_cut,
                        gateways,
                        "RS-485 bus",
                        |g, w| g.bus_cuts.push(w),
                    )?;
                }
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
                    if let Some(d) = indices
                        .iter()
                        .filter_map(|&d| devices.get(d))
                        .find(|d| d.peer.is_some())
                    {
                        return Err(self.err(
                            format!("{at}.devices"),
                            format!(
                                "{} is served by {}: the rig cannot cut its network (name the devices to cut)",
                                d.name.as_str(),
                                super::faults::peer_name(d)
                            ),
                        ));
                    }
                    cut_off = indices
                        .iter()
                        .filter_map(|&d| devices.get(d).map(|d| d.name.clone()))
                        .collect();
                    cut = Some((i, indices, e.at));
                }
                RawEventKind::NodeReboot => {
                    cut_off = self.rebooted(&at, e, devices)?;
                }
                // Several may be open at once, may be renewed, and end by themselves.
                RawEventKind::MaintenanceStart | RawEventKind::MaintenanceEnd => {}
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
                gateways: targets,
                maintenance,
            });
        }
        // Cuts still open at the end last to the end.
        for (g, spec) in gateways.iter_mut().enumerate() {
            if let Some(Some((_, from))) = net_cut.get(g) {
                spec.network_cuts.push(Window {
                    from: *from,
                    to: None,
                });
            }
            if let Some(Some((_, from))) = bus_cut.get(g) {
                spec.bus_cuts.push(Window {
                    from: *from,
                    to: None,
                });
            }
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

    /// The gateways an event acts on: the one `gateway` names, else every gateway; none for
    /// events that do not act on gateways (which must not name one).
    fn event_gateways(
        &self,
        at: &str,
        e: &RawEvent,
        gateways: &[GatewaySpec],
    ) -> Result<Vec<usize>, ScenarioError> {
        if !e.kind.names_a_gateway() {
            if e.gateway.is_some() {
                return Err(self.err(
                    format!("{at}.gateway"),
                    "only for kind \"gateway-kill\", \"gateway-restart\", \"gateway-network-cut\", \"gateway-network-restore\", \"bus-cut\", \"bus-restore\", \"maintenance-start\" or \"maintenance-end\"",
                ));
            }
            return Ok(Vec::new());
        }
        let Some(name) = &e.gateway else {
            return Ok((0..gateways.len()).collect());
        };
        let named: Vec<&str> = gateways
            .iter()
            .map(|g| g.name.as_str())
            .filter(|n| !n.is_empty())
            .collect();
        if named.is_empty() {
            return Err(self.err(
                format!("{at}.gateway"),
                format!(
                    "{name:?}: the scenario has no [[gateways]]; name them there to act on one (without gateway the event acts on the one gateway)"
                ),
            ));
        }
        gateways
            .iter()
            .position(|g| g.name == *name)
            .map(|g| vec![g])
            .ok_or_else(|| {
                self.err(
                    format!("{at}.gateway"),
                    format!("no gateway named {name:?} (gateways: {})", named.join(", ")),
                )
            })
    }

    /// Opens (`cutting`) or closes a cut of each target gateway's network or bus; a closed
    /// one becomes a window through `push`.
    #[allow(clippy::too_many_arguments)]
    fn cut_or_mend(
        &self,
        at: &str,
        t: ScenarioTime,
        i: usize,
        cutting: bool,
        targets: &[usize],
        open: &mut [Option<(usize, ScenarioTime)>],
        gateways: &mut [GatewaySpec],
        what: &str,
        push: impl Fn(&mut GatewaySpec, Window),
    ) -> Result<(), ScenarioError> {
        for &g in targets {
            let whose = gateway_what(gateways, g, what);
            let (Some(slot), Some(spec)) = (open.get_mut(g), gateways.get_mut(g)) else {
                continue;
            };
            match (*slot, cutting) {
                (Some((j, _)), true) => {
                    return Err(self.err(
                        format!("{at}.kind"),
                        format!("the {whose} is already cut since events[{j}]: restore it first"),
                    ));
                }
                (None, false) => {
                    return Err(self.err(
                        format!("{at}.kind"),
                        format!("the {whose} is not cut: no cut before this restore"),
                    ));
                }
                (_, true) => *slot = Some((i, t)),
                (Some((_, from)), false) => {
                    *slot = None;
                    push(spec, Window { from, to: Some(t) });
                }
            }
        }
        Ok(())
    }

    /// What a `maintenance-*` event names (and nothing for other events, which must not
    /// name it).
    fn maintenance(
        &self,
        at: &str,
        e: &RawEvent,
        devices: &[Device],
    ) -> Result<Option<Maintenance>, ScenarioError> {
        let is = matches!(
            e.kind,
            RawEventKind::MaintenanceStart | RawEventKind::MaintenanceEnd
        );
        if !is {
            for (field, given) in [
                ("device", e.device.is_some()),
                ("channel", e.channel.is_some()),
                ("for", e.duration.is_some()),
            ] {
                if given {
                    return Err(self.err(
                        format!("{at}.{field}"),
                        "only for kind \"maintenance-start\" or \"maintenance-end\"",
                    ));
                }
            }
            return Ok(None);
        }
        let Some(name) = &e.device else {
            return Err(self.err(
                format!("{at}.device"),
                format!("{}: name the device put under maintenance", e.kind),
            ));
        };
        let d = self.device_index(&format!("{at}.device"), name, devices)?;
        let device = devices
            .get(d)
            .ok_or_else(|| self.err(format!("{at}.device"), "no device"))?;
        let duration = match (e.kind, e.duration) {
            (RawEventKind::MaintenanceStart, Some(t)) if t.millis() >= 1000 => Some(t),
            (RawEventKind::MaintenanceStart, Some(t)) => {
                return Err(self.err(
                    format!("{at}.for"),
                    format!("{t}: at least 1 s (write \"10m\")"),
                ));
            }
            (RawEventKind::MaintenanceStart, None) => {
                return Err(self.err(
                    format!("{at}.for"),
                    "maintenance-start: say for how long (\"10m\"): maintenance always ends by itself",
                ));
            }
            (_, Some(_)) => {
                return Err(self.err(format!("{at}.for"), "only for kind \"maintenance-start\""));
            }
            (_, None) => None,
        };
        Ok(Some(Maintenance {
            device: device.name.clone(),
            channel: e.channel,
            duration,
        }))
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

/// `gateway`, `gateway "b"`, `gateway "b"'s network`, for errors (after "the").
fn gateway_what(gateways: &[GatewaySpec], g: usize, what: &str) -> String {
    let who = match gateways.get(g).map(|s| s.name.as_str()) {
        None | Some("") => "gateway".to_string(),
        Some(n) => format!("gateway {n:?}"),
    };
    if what.is_empty() {
        who
    } else {
        format!("{who}'s {what}")
    }
}
