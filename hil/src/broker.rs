//! An embedded MQTT broker (rumqttd) on loopback, for `firebreak demo` and the rig's default:
//! a demo needs nothing installed. Real sites and the tests of the contract use Mosquitto.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Why the embedded broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The configuration was refused.
    #[error("embedded broker configuration: {0}")]
    Config(String),
    /// No free loopback port could be listened on.
    #[error("embedded broker: not listening on {addr} after {waited:?}")]
    NotListening {
        /// Where it should have listened.
        addr: SocketAddr,
        /// How long it was given.
        waited: Duration,
    },
}

/// A running embedded broker. It runs until the process ends (rumqttd has no stop).
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
}

impl EmbeddedBroker {
    /// Starts a broker on a free port of 127.0.0.1 and waits until it accepts connections.
    pub fn start() -> Result<EmbeddedBroker, BrokerError> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| BrokerError::Config(format!("no free port: {e}")))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let text = format!(
            r#"
id = 0
[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{addr}"
next_connection_delay_ms = 1

[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 20480
max_inflight_count = 100
dynamic_filters = true
"#
        );
        let config: rumqttd::Config =
            toml::from_str(&text).map_err(|e| BrokerError::Config(e.to_string()))?;
        let mut broker = rumqttd::Broker::new(config);
        std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    eprintln!("embedded broker stopped: {e}");
                }
            })
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        let waited = Duration::from_secs(10);
        let start = Instant::now();
        while start.elapsed() < waited {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(EmbeddedBroker { addr });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(BrokerError::NotListening { addr, waited })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its URL for site configurations: `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }
}
