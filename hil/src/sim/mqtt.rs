//! Room sensors that publish JSON over MQTT, as building-management sensors do:
//! `{"temperature":24.5,"humidity":40.0}` every publish interval, QoS 0, not retained.
//!
//! One task per sensor owns its rumqttc event loop. A `drop` fault closes the connection
//! (the event loop is dropped, with no DISCONNECT, as when a cable is pulled) and the sensor
//! connects again when the fault ends; a broker that goes away is retried with a short
//! back-off, like a real sensor.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, MqttOptions, QoS};
use tokio::task::JoinHandle;
use tracing::debug;

use super::device::{Publication, SimDevice};
use crate::clock::ScenarioClock;

/// Where an MQTT broker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Broker {
    /// Parses `mqtt://host:port` (port 1883 when absent).
    pub fn parse(url: &str) -> Option<Broker> {
        let rest = url.strip_prefix("mqtt://")?.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok().filter(|p| *p != 0)?),
            None => (rest, 1883),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        (!host.is_empty() && !host.contains(['/', ' ', '@'])).then(|| Broker {
            host: host.to_string(),
            port,
        })
    }

    /// `mqtt://host:port`.
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("mqtt://[{}]:{}", self.host, self.port)
        } else {
            format!("mqtt://{}:{}", self.host, self.port)
        }
    }
}

/// A running room sensor; stops when dropped.
#[derive(Debug)]
pub struct MqttSensor {
    topic: String,
    task: JoinHandle<()>,
}

impl MqttSensor {
    /// Starts publishing `device`'s values on `topic` every `interval` of real time.
    pub fn start(
        device: Arc<SimDevice>,
        clock: ScenarioClock,
        broker: Broker,
        topic: String,
        interval: Duration,
    ) -> MqttSensor {
        let task = tokio::spawn(run(device, clock, broker, topic.clone(), interval));
        MqttSensor { topic, task }
    }

    /// The topic it publishes on.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl Drop for MqttSensor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn connect(device: &SimDevice, broker: &Broker) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(
        format!("hil-{}-{}", device.name(), fastrand::u32(..)),
        broker.host.clone(),
        broker.port,
    );
    options.set_keep_alive(Duration::from_secs(5));
    AsyncClient::new(options, 16)
}

async fn run(
    device: Arc<SimDevice>,
    clock: ScenarioClock,
    broker: Broker,
    topic: String,
    interval: Duration,
) {
    let mut link: Option<(AsyncClient, EventLoop)> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some((client, eventloop)) = link.as_mut() else {
            tick.tick().await;
            match device.publication(clock.now()) {
                Publication::Disconnected => {}
                publication => {
                    let (client, eventloop) = connect(&device, &broker);
                    publish(&client, &topic, publication);
                    link = Some((client, eventloop));
                }
            }
            continue;
        };
        tokio::select! {
            event = eventloop.poll() => {
                if let Err(e) = event {
                    debug!(device = %device.name(), error = %e, "broker link down");
                    tokio::time::sleep(interval.min(Duration::from_millis(500))).await;
                }
            }
            _ = tick.tick() => {
                match device.publication(clock.now()) {
                    Publication::Disconnected => {
                        debug!(device = %device.name(), "dropping the broker connection");
                        link = None;
                    }
                    publication => publish(client, &topic, publication),
                }
            }
        }
    }
}

fn publish(client: &AsyncClient, topic: &str, publication: Publication) {
    let Publication::Publish(payload, delay) = publication else {
        return;
    };
    if delay.is_zero() {
        // The request queue holds 16; a sensor that cannot publish drops the reading.
        client
            .try_publish(topic, QoS::AtMostOnce, false, payload)
            .ok();
        return;
    }
    let (client, topic) = (client.clone(), topic.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        client
            .try_publish(topic, QoS::AtMostOnce, false, payload)
            .ok();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let b = Broker::parse("mqtt://127.0.0.1:18830").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", 18830));
        assert_eq!(b.url(), "mqtt://127.0.0.1:18830");
        assert_eq!(Broker::parse("mqtt://broker").unwrap().port, 1883);
        assert_eq!(
            Broker::parse("mqtt://[::1]:1884").unwrap().url(),
            "mqtt://[::1]:1884"
        );
        assert_eq!(Broker::parse("tcp://x:1"), None);
        assert_eq!(Broker::parse("mqtt://x:0"), None);
        assert_eq!(Broker::parse("mqtt://"), None);
    }
}
