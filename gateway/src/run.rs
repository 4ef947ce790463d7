//! `firebreak run`: the gateway daemon.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::acquire::table::SignalTable;
use crate::acquire::{EVENT_CHANNEL_CAPACITY, Event, modbus, mqtt, now_ms};
use crate::config::{SiteConfig, Transport};
use crate::http;

/// How often the table ages its values.
pub const TICK: Duration = Duration::from_millis(250);

/// Why the gateway stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The status endpoint could not listen.
    #[error("http.bind {addr}: {error}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

/// Runs the gateway until `shutdown` completes.
pub async fn run(
    config: SiteConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let (tx, mut rx) = mpsc::channel::<Event>(EVENT_CHANNEL_CAPACITY);
    let table = Arc::new(Mutex::new(SignalTable::new(&config)));
    let mut tasks = JoinSet::new();

    let listener = tokio::net::TcpListener::bind(config.http_bind)
        .await
        .map_err(|error| RunError::Bind {
            addr: config.http_bind,
            error,
        })?;
    let local = listener.local_addr().map_err(|error| RunError::Bind {
        addr: config.http_bind,
        error,
    })?;
    info!(site = %config.site, gateway = %config.gateway, http = %local, "gateway starting");
    let app = http::router(http::Shared {
        site: config.site.to_string(),
        gateway: config.gateway.to_string(),
        table: table.clone(),
    });
    tasks.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "http endpoint stopped");
        }
    });

    for d in config
        .devices
        .iter()
        .filter(|d| matches!(d.transport, Transport::Tcp { .. }))
    {
        tasks.spawn(modbus::run_tcp_device(d.clone(), tx.clone()));
    }
    for devices in config.rtu_buses().into_values() {
        let Some(Transport::Rtu(line)) = devices.first().map(|d| d.transport.clone()) else {
            continue;
        };
        tasks.spawn(modbus::run_rtu_bus(
            line,
            devices.into_iter().cloned().collect(),
            tx.clone(),
        ));
    }
    for s in &config.mqtt_sources {
        tasks.spawn(mqtt::run_source(
            s.clone(),
            config.gateway.clone(),
            tx.clone(),
        ));
    }
    drop(tx);

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let changed = tokio::select! {
            _ = &mut shutdown => break,
            event = rx.recv() => {
                let Some(event) = event else { break };
                match table.lock() {
                    Ok(mut t) => t.apply(&event, now_ms()),
                    Err(_) => break,
                }
            }
            _ = tick.tick() => match table.lock() {
                Ok(mut t) => t.tick(now_ms()),
                Err(_) => break,
            },
        };
        for s in changed {
            debug!(device = %s.device, signal = %s.signal, channel = s.channel, value = s.value, quality = %s.quality, "signal");
        }
    }
    info!("gateway stopping");
    tasks.shutdown().await;
    Ok(())
}
