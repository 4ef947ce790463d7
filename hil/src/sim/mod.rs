//! Device simulators: a scenario's UPSes, PDUs and sensor node as Modbus TCP servers, its room
//! sensors as MQTT publishers, all driven by one [`ScenarioClock`].
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use firebreak_hil::scenario::Scenario;
//! use firebreak_hil::sim::{SimOptions, Simulation};
//!
//! let scenario = Scenario::load("hil/scenarios/battery-fire.toml".as_ref())?;
//! let sim = Simulation::start(&scenario, SimOptions { paused: true, ..SimOptions::default() }).await?;
//! let site = firebreak_hil::site::site_config_for(&scenario, sim.addresses());
//! // … write `site`, start the gateway on it, then let the scenario run:
//! sim.clock().resume();
//! # Ok(()) }
//! ```
//!
//! The rig drives time through [`Simulation::clock`] (pause, resume, jump, speed) and can
//! change any device by hand through [`Simulation::device`] ([`SimDevice::set_value`],
//! [`SimDevice::inject`], [`SimDevice::set_cut`]), on top of what the scenario scripts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use firebreak_protocols::DeviceId;

use crate::clock::{ScaleError, ScenarioClock};
use crate::scenario::{Bus, DeviceKind, Peer, SNMP_PDU_PROFILE, Scenario};

pub mod device;
pub mod modbus;
pub mod mqtt;
pub mod peer_devices;

use crate::node::{FirmwareNodes, NodeBackend};
pub use device::{ActiveFaults, Answer, DeviceStats, Publication, SimDevice, mqtt_field};
pub use modbus::ModbusServer;
pub use mqtt::{Broker, MqttSensor};
pub use peer_devices::{NutFigures, NutServer, SnmpServer};

/// How Modbus devices are spread over ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Each device on its own port, as separate network cards are.
    #[default]
    PortPerDevice,
    /// Every device on one port, told apart by unit id, as behind a Modbus gateway. The
    /// scenario's unit ids must then differ.
    SharedPort,
}

/// How to start a scenario's simulators.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Speed-up over real time; the scenario's `time_scale` when `None`.
    pub time_scale: Option<f64>,
    /// The address Modbus servers listen on (127.0.0.1).
    pub host: IpAddr,
    /// Ports.
    pub layout: Layout,
    /// The broker room sensors publish to; without one they are not started.
    pub broker: Option<Broker>,
    /// How the sensor nodes are brought up.
    pub node: NodeBackend,
    /// Where the firmware nodes' PTYs, sockets and logs go (a temporary directory when
    /// `None`).
    pub work_dir: Option<PathBuf>,
    /// Start with the clock paused at the scenario's start (the rig resumes it when the
    /// gateway is up).
    pub paused: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            time_scale: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            layout: Layout::PortPerDevice,
            broker: None,
            node: NodeBackend::StandIn,
            work_dir: None,
            paused: false,
        }
    }
}

/// Why simulators could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listener could not be opened.
    #[error("{device}: cannot listen on {addr}: {source}")]
    Listen {
        /// The device (or devices) it was for.
        device: String,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Two devices share a unit id on a shared port.
    #[error(
        "devices {first} and {second} both use unit {unit}: give them different units, or one port per device"
    )]
    UnitClash {
        /// One device.
        first: String,
        /// The other.
        second: String,
        /// The unit id.
        unit: u8,
    },
    /// The time scale is out of range.
    #[error("{0}")]
    Scale(#[from] ScaleError),
    /// The firmware nodes could not be started (names what and why).
    #[error("firmware nodes ({backend}): {problem}")]
    Nodes {
        /// The back-end.
        backend: &'static str,
        /// What failed.
        problem: String,
    },
}

/// Where the gateway reaches a simulated device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Modbus TCP.
    ModbusTcp {
        /// Listening address.
        addr: SocketAddr,
        /// Unit id.
        unit: u8,
    },
    /// Modbus RTU on a serial device (the firmware nodes' line).
    ModbusRtu {
        /// The serial device the gateway opens.
        serial: PathBuf,
        /// Unit id.
        unit: u8,
    },
    /// An MQTT publisher.
    Mqtt {
        /// The broker.
        broker: Broker,
        /// The topic it publishes on.
        topic: String,
    },
    /// A UPS behind NUT's upsd.
    Nut {
        /// `nut://127.0.0.1:PORT/UPS`.
        url: String,
    },
    /// An SNMP agent (snmpsim serving a recording), v2c.
    Snmp {
        /// Its UDP address.
        addr: SocketAddr,
        /// The community (the recording's file name).
        community: String,
        /// The gateway's built-in OID profile to read it with.
        profile: &'static str,
    },
    /// Not started, and why.
    NotStarted {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ModbusTcp { addr, unit } => write!(f, "modbus tcp://{addr} unit {unit}"),
            Self::ModbusRtu { serial, unit } => {
                write!(f, "modbus rtu://{} unit {unit}", serial.display())
            }
            Self::Mqtt { broker, topic } => write!(f, "mqtt {} topic {topic}", broker.url()),
            Self::Nut { url } => f.write_str(url),
            Self::Snmp {
                addr, community, ..
            } => write!(f, "snmp://{addr} community {community}"),
            Self::NotStarted { reason } => write!(f, "not started: {reason}"),
        }
    }
}

/// Where each device of a scenario is, in the scenario's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimAddresses {
    /// (device, endpoint).
    pub devices: Vec<(DeviceId, Endpoint)>,
    /// The sensor nodes' second port (bus B), for a scenario's second gateway: (device,
    /// endpoint). Empty with one gateway.
    pub bus_b: Vec<(DeviceId, Endpoint)>,
}

impl SimAddresses {
    /// The endpoint of a device as a gateway on `bus` reaches it: a node's bus-B port for
    /// [`Bus::B`] when it has one, else its one endpoint.
    pub fn get_on(&self, device: &str, bus: Bus) -> Option<&Endpoint> {
        let b = match bus {
            Bus::A => None,
            Bus::B => self
                .bus_b
                .iter()
                .find(|(d, _)| d.as_str() == device)
                .map(|(_, e)| e),
        };
        b.or_else(|| self.get(device))
    }

    /// The endpoint of a device.
    pub fn get(&self, device: &str) -> Option<&Endpoint> {
        self.devices
            .iter()
            .find(|(d, _)| d.as_str() == device)
            .map(|(_, e)| e)
    }
}

/// The MQTT topic a room sensor publishes on: `firebreak-hil/<scenario>/<zone>/<device>`.
pub fn sensor_topic(scenario: &Scenario, zone: &str, device: &str) -> String {
    format!("firebreak-hil/{}/{zone}/{device}", scenario.name)
}

/// A scenario's simulators, running; everything stops when it is dropped.
#[derive(Debug)]
pub struct Simulation {
    clock: ScenarioClock,
    devices: Vec<Arc<SimDevice>>,
    servers: Vec<ModbusServer>,
    sensors: Vec<MqttSensor>,
    addresses: SimAddresses,
    firmware: Option<FirmwareNodes>,
    nut: Option<NutServer>,
    snmp: Option<SnmpServer>,
    _dir: Option<tempfile::TempDir>,
}

impl Simulation {
    /// Starts every device of `scenario`.
    pub async fn start(scenario: &Scenario, options: SimOptions) -> Result<Simulation, SimError> {
        let scale = options.time_scale.unwrap_or(scenario.time_scale);
        let clock = if options.paused {
            let clock = ScenarioClock::paused(scenario.start);
            clock.set_scale(scale)?;
            clock
        } else {
            ScenarioClock::running(scenario.start, scale)?
        };
        let devices: Vec<Arc<SimDevice>> = scenario
            .devices
            .iter()
            .map(|d| Arc::new(SimDevice::from_scenario(d)))
            .collect();
        for d in &devices {
            d.boot(scenario.start, 0);
        }
        let mut endpoints: Vec<Option<Endpoint>> = vec![None; devices.len()];
        let mut bus_b: Vec<(DeviceId, Endpoint)> = Vec::new();
        // Each gateway reads the nodes on its own bus: the first on A, the second on B.
        let cuts_of = |bus: Bus| {
            scenario
                .gateways
                .iter()
                .find(|g| g.bus == bus)
                .map(|g| g.bus_cuts.clone())
                .unwrap_or_default()
        };
        let two_buses = scenario.gateways.iter().any(|g| g.bus == Bus::B);
        let mut servers = Vec::new();
        let mut sensors = Vec::new();

        // Firmware nodes are on their RS-485 line, not on a TCP port.
        let firmware_nodes = options.node.is_firmware() && scenario.nodes().next().is_some();
        let modbus: Vec<usize> = (0..devices.len())
            .filter(|&i| {
                scenario.devices.get(i).is_some_and(|d| {
                    d.kind.is_modbus()
                        && d.peer.is_none()
                        && !(firmware_nodes && d.kind == DeviceKind::Node)
                })
            })
            .collect();
        let mut temp = None;
        let firmware = if firmware_nodes {
            let nodes_error = |problem: String| SimError::Nodes {
                backend: options.node.name(),
                problem,
            };
            let dir = match &options.work_dir {
                Some(d) => d.clone(),
                None => {
                    let t = tempfile::Builder::new()
                        .prefix("firebreak-hil-nodes-")
                        .tempdir()
                        .map_err(|e| nodes_error(format!("no temporary directory: {e}")))?;
                    let p = t.path().to_path_buf();
                    temp = Some(t);
                    p
                }
            };
            let nodes =
                FirmwareNodes::start(scenario, &options.node, &devices, clock.clone(), &dir)
                    .await
                    .map_err(nodes_error)?;
            for (i, d) in scenario.devices.iter().enumerate() {
                if d.kind == DeviceKind::Node
                    && let Some(e) = endpoints.get_mut(i)
                {
                    *e = Some(Endpoint::ModbusRtu {
                        serial: nodes.gateway_port().to_path_buf(),
                        unit: d.unit,
                    });
                }
                if d.kind == DeviceKind::Node
                    && let Some(b) = nodes.gateway_port_b()
                {
                    bus_b.push((
                        d.name.clone(),
                        Endpoint::ModbusRtu {
                            serial: b.to_path_buf(),
                            unit: d.unit,
                        },
                    ));
                }
            }
            Some(nodes)
        } else {
            None
        };
        let bind = SocketAddr::new(options.host, 0);
        let listen_error = |device: String| {
            move |source| SimError::Listen {
                device,
                addr: bind,
                source,
            }
        };
        match options.layout {
            Layout::PortPerDevice => {
                for &i in &modbus {
                    let (Some(d), Some(sd)) = (scenario.devices.get(i), devices.get(i)) else {
                        continue;
                    };
                    let node = d.kind == DeviceKind::Node;
                    let cuts = if node { cuts_of(Bus::A) } else { Vec::new() };
                    let server = ModbusServer::start_on_bus(
                        bind,
                        vec![(d.unit, Arc::clone(sd))],
                        clock.clone(),
                        cuts,
                    )
                    .await
                    .map_err(listen_error(d.name.to_string()))?;
                    if node && two_buses {
                        // The stand-in's second port: bus B, with its own cuts.
                        let b = ModbusServer::start_on_bus(
                            bind,
                            vec![(d.unit, Arc::clone(sd))],
                            clock.clone(),
                            cuts_of(Bus::B),
                        )
                        .await
                        .map_err(listen_error(format!("{} (bus B)", d.name)))?;
                        bus_b.push((
                            d.name.clone(),
                            Endpoint::ModbusTcp {
                                addr: b.local_addr(),
                                unit: d.unit,
                            },
                        ));
                        servers.push(b);
                    }
                    if let Some(e) = endpoints.get_mut(i) {
                        *e = Some(Endpoint::ModbusTcp {
                            addr: server.local_addr(),
                            unit: d.unit,
                        });
                    }
                    servers.push(server);
                }
            }
            Layout::SharedPort => {
                let mut units: Vec<(u8, Arc<SimDevice>)> = Vec::new();
                for &i in &modbus {
                    let (Some(d), Some(sd)) = (scenario.devices.get(i), devices.get(i)) else {
                        continue;
                    };
                    if let Some((_, other)) = units.iter().find(|(u, _)| *u == d.unit) {
                        return Err(SimError::UnitClash {
                            first: other.name().to_string(),
                            second: d.name.to_string(),
                            unit: d.unit,
                        });
                    }
                    units.push((d.unit, Arc::clone(sd)));
                }
                if !units.is_empty() {
                    // One port: one bus, the first gateway's (the rig uses a port per device).
                    let server =
                        ModbusServer::start_on_bus(bind, units, clock.clone(), cuts_of(Bus::A))
                            .await
                            .map_err(listen_error("the shared port".into()))?;
                    for &i in &modbus {
                        if let (Some(e), Some(d)) = (endpoints.get_mut(i), scenario.devices.get(i))
                        {
                            *e = Some(Endpoint::ModbusTcp {
                                addr: server.local_addr(),
                                unit: d.unit,
                            });
                        }
                    }
                    servers.push(server);
                }
            }
        }

        for (i, d) in scenario.devices.iter().enumerate() {
            if d.kind != DeviceKind::RoomMqtt {
                continue;
            }
            let endpoint = match (&options.broker, devices.get(i)) {
                (Some(broker), Some(sd)) => {
                    let topic = sensor_topic(scenario, d.zone.as_str(), d.name.as_str());
                    sensors.push(MqttSensor::start(
                        Arc::clone(sd),
                        clock.clone(),
                        broker.clone(),
                        topic.clone(),
                        d.publish_interval,
                    ));
                    Endpoint::Mqtt {
                        broker: broker.clone(),
                        topic,
                    }
                }
                _ => Endpoint::NotStarted {
                    reason: "no MQTT broker given (--broker mqtt://HOST:PORT)".into(),
                },
            };
            if let Some(e) = endpoints.get_mut(i) {
                *e = Some(endpoint);
            }
        }

        // Devices served by NUT and snmpsim: when those are missing, the devices are not
        // started, and say why (the rig refuses to run such a scenario).
        let nut_devices: Vec<usize> = (0..devices.len())
            .filter(|&i| {
                scenario
                    .devices
                    .get(i)
                    .is_some_and(|d| d.peer == Some(Peer::Nut))
            })
            .collect();
        let nut = if nut_devices.is_empty() {
            None
        } else {
            let ups: Vec<Arc<SimDevice>> = nut_devices
                .iter()
                .filter_map(|&i| devices.get(i).cloned())
                .collect();
            match NutServer::start(ups, clock.clone()).await {
                Ok(server) => {
                    for &i in &nut_devices {
                        if let (Some(e), Some(d)) = (endpoints.get_mut(i), scenario.devices.get(i))
                        {
                            *e = Some(Endpoint::Nut {
                                url: server.url(d.name.as_str()),
                            });
                        }
                    }
                    Some(server)
                }
                Err(reason) => {
                    for &i in &nut_devices {
                        if let Some(e) = endpoints.get_mut(i) {
                            *e = Some(Endpoint::NotStarted {
                                reason: reason.clone(),
                            });
                        }
                    }
                    None
                }
            }
        };
        let snmp_devices: Vec<(usize, String)> = scenario
            .devices
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match &d.peer {
                Some(Peer::Snmp { recording }) => Some((i, recording.clone())),
                _ => None,
            })
            .collect();
        let snmp = if snmp_devices.is_empty() {
            None
        } else {
            let recordings: Vec<String> = snmp_devices.iter().map(|(_, r)| r.clone()).collect();
            let started = SnmpServer::start(&recordings).await;
            for (i, recording) in &snmp_devices {
                if let Some(e) = endpoints.get_mut(*i) {
                    *e = Some(match &started {
                        Ok(server) => Endpoint::Snmp {
                            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), server.port()),
                            community: peer_devices::community_of(recording).to_string(),
                            profile: SNMP_PDU_PROFILE,
                        },
                        Err(reason) => Endpoint::NotStarted {
                            reason: reason.clone(),
                        },
                    });
                }
            }
            started.ok()
        };

        let addresses = SimAddresses {
            devices: scenario
                .devices
                .iter()
                .zip(endpoints)
                .map(|(d, e)| {
                    (
                        d.name.clone(),
                        e.unwrap_or(Endpoint::NotStarted {
                            reason: "not simulated".into(),
                        }),
                    )
                })
                .collect(),
            bus_b,
        };
        Ok(Simulation {
            clock,
            devices,
            servers,
            sensors,
            addresses,
            firmware,
            nut,
            snmp,
            _dir: temp,
        })
    }

    /// The firmware nodes, when the nodes run the firmware.
    pub fn firmware(&self) -> Option<&FirmwareNodes> {
        self.firmware.as_ref()
    }

    /// NUT's upsd and drivers, when the scenario has a UPS behind NUT.
    pub fn nut(&self) -> Option<&NutServer> {
        self.nut.as_ref()
    }

    /// snmpsim, when the scenario has PDUs recorded from real devices.
    pub fn snmp(&self) -> Option<&SnmpServer> {
        self.snmp.as_ref()
    }

    /// The scenario clock every simulator reads.
    pub fn clock(&self) -> &ScenarioClock {
        &self.clock
    }

    /// Where each device is.
    pub fn addresses(&self) -> &SimAddresses {
        &self.addresses
    }

    /// A device by name, to change by hand or to read its counters.
    pub fn device(&self, name: &str) -> Option<&Arc<SimDevice>> {
        self.devices.iter().find(|d| d.name().as_str() == name)
    }

    /// Every device.
    pub fn devices(&self) -> &[Arc<SimDevice>] {
        &self.devices
    }

    /// The Modbus servers (one per port).
    pub fn servers(&self) -> &[ModbusServer] {
        &self.servers
    }

    /// The MQTT room sensors.
    pub fn sensors(&self) -> &[MqttSensor] {
        &self.sensors
    }
}
