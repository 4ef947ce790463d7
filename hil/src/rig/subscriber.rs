//! The rig's subscriber: a controller on the site's trigger topic that records every
//! publication it receives, when, and whether it verifies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use firebreak_protocols::Trigger;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::verify::TrustedKey;
use crate::clock::ScenarioClock;
use crate::sim::Broker;
use crate::time::ScenarioTime;

/// One publication received on the trigger topic.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived, in scenario time.
    pub at: ScenarioTime,
    /// When it arrived, on the wall clock (ms since the Unix epoch).
    pub wall_ms: u64,
    /// The trigger from the signed bytes, or why it does not verify.
    pub trigger: Result<Trigger, String>,
}

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A running subscriber; stops when dropped.
#[derive(Debug)]
pub struct Subscriber {
    received: Arc<Mutex<Vec<Received>>>,
    subscribed: watch::Receiver<u32>,
    task: JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Subscribes to `topic` (QoS 1) on `broker`, verifying with whichever of `keys` (one
    /// per gateway) signed each publication. With `persistent`, the session survives
    /// disconnects (and, on a broker with persistence, restarts of the broker): what is
    /// published while the subscriber reconnects is queued for it.
    pub fn start(
        broker: &Broker,
        topic: String,
        keys: Vec<TrustedKey>,
        clock: ScenarioClock,
        persistent: bool,
    ) -> Subscriber {
        let client_id = format!("firebreak-hil-{}-{}", std::process::id(), fastrand::u32(..));
        let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(!persistent);
        options.set_max_packet_size(64 * 1024, 64 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let received = Arc::new(Mutex::new(Vec::new()));
        let (tx, subscribed) = watch::channel(0u32);
        let store = received.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.try_subscribe(topic.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        tx.send_modify(|n| *n += 1);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let r = Received {
                            at: clock.now(),
                            wall_ms: wall_ms(),
                            trigger: TrustedKey::verify_any(&keys, &p.payload),
                        };
                        if let Ok(mut v) = store.lock() {
                            v.push(r);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "subscriber: broker link down; reconnecting");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Subscriber {
            received,
            subscribed,
            task,
        }
    }

    /// Waits until the broker acknowledged the subscription, at most `within`.
    pub async fn subscribed(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.subscribed.wait_for(|n| *n > 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Everything received so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
