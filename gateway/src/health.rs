//! The gateway's health, as `/healthz` answers it: healthy only when every acquisition task is
//! alive, the policy engine has stepped recently, the outbox store is writable, and — when
//! brokers are configured — at least one broker is connected. Anything else is a reason,
//! named, so a watchdog (systemd, a load balancer, a person with curl) can act on it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use serde::Serialize;

use crate::deliver::fault::OUTBOX;
use crate::deliver::{Delivery, Fault};

/// The engine is reported stalled when it has not stepped for this long (it steps at least
/// every [`crate::run::TICK`]).
pub const STALL_MS: u64 = 5_000;

/// What the run loop and the acquisition tasks report.
#[derive(Debug)]
pub struct Health {
    last_step_ms: AtomicU64,
    wall_clock_steps: AtomicU64,
    acquisition_total: AtomicUsize,
    acquisition_alive: AtomicUsize,
}

/// The answer of [`Health::check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// Whether every check passes.
    pub healthy: bool,
    /// Whether the gateway's own machinery works — every check but the brokers': what
    /// systemd's watchdog is fed on. A restart cannot bring a broker back, and would restart
    /// the policy's debounces and rates in the middle of an incident (a rule waiting 60 s
    /// would never fire while the brokers are out), so no broker connected is unhealthy for
    /// `/healthz` but no reason to be restarted.
    pub alive: bool,
    /// Why not, one line each.
    pub reasons: Vec<String>,
    /// When the policy engine last stepped, on the gateway's monotonic clock
    /// (`acquire::mono_ms`: the wall clock at start, advanced monotonically).
    pub engine_last_step_ms: u64,
    /// Acquisition tasks running, of those started.
    pub acquisition_alive: usize,
    /// Acquisition tasks started.
    pub acquisition_total: usize,
    /// Brokers connected, of those configured.
    pub brokers_connected: usize,
    /// Brokers configured.
    pub brokers_total: usize,
    /// The gateway's faults (`outbox`, `broker-config`).
    pub faults: Vec<Fault>,
}

struct Alive(Arc<Health>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.acquisition_alive.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Health {
    /// A gateway starting at `now_ms`.
    pub fn new(now_ms: u64) -> Arc<Health> {
        Arc::new(Health {
            last_step_ms: AtomicU64::new(now_ms),
            wall_clock_steps: AtomicU64::new(0),
            acquisition_total: AtomicUsize::new(0),
            acquisition_alive: AtomicUsize::new(0),
        })
    }

    /// The engine stepped at `now_ms`.
    pub fn stepped(&self, now_ms: u64) {
        self.last_step_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Counts a step of the wall clock (judging is unaffected: it runs on the monotonic one).
    pub fn wall_clock_stepped(&self) {
        self.wall_clock_steps.fetch_add(1, Ordering::Relaxed);
    }

    /// Steps of the wall clock seen since the start.
    pub fn wall_clock_steps(&self) -> u64 {
        self.wall_clock_steps.load(Ordering::Relaxed)
    }

    /// Wraps an acquisition task, so that its end (or its panic) is seen.
    pub fn acquisition<F>(self: &Arc<Self>, task: F) -> impl Future<Output = ()> + use<F>
    where
        F: Future<Output = ()>,
    {
        self.acquisition_total.fetch_add(1, Ordering::Relaxed);
        self.acquisition_alive.fetch_add(1, Ordering::Relaxed);
        let alive = Alive(self.clone());
        async move {
            let _alive = alive;
            task.await;
        }
    }

    /// An acquisition task is being stopped on purpose (a reload removed or replaced its
    /// device): it no longer counts among those started, so its end is not a reason. Call it
    /// before stopping the task.
    pub fn retire(&self) {
        let _ = self
            .acquisition_total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Checks everything at `now_ms`.
    pub fn check(&self, delivery: Option<&Delivery>, now_ms: u64) -> HealthReport {
        let mut reasons = Vec::new();
        let total = self.acquisition_total.load(Ordering::Relaxed);
        let alive = self.acquisition_alive.load(Ordering::Relaxed);
        if alive < total {
            reasons.push(format!(
                "acquisition: {} of {total} tasks stopped",
                total - alive
            ));
        }
        let step = self.last_step_ms.load(Ordering::Relaxed);
        let idle = now_ms.saturating_sub(step);
        if idle > STALL_MS {
            reasons.push(format!(
                "engine: no policy step for {:.1} s",
                idle as f64 / 1000.0
            ));
        }
        let (mut connected, mut brokers, mut faults) = (0, 0, Vec::new());
        // Reasons outside the gateway (no broker connected).
        let mut external = 0;
        if let Some(d) = delivery {
            let stats = d.stats();
            brokers = stats.brokers.len();
            connected = stats.brokers.iter().filter(|b| b.connected).count();
            if connected == 0 && brokers > 0 {
                let why = stats
                    .brokers
                    .iter()
                    .map(|b| match &b.last_error {
                        Some(e) => format!("{} ({e})", b.name),
                        None => format!("{} (connecting)", b.name),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                reasons.push(format!("brokers: none connected: {why}"));
                external = 1;
            }
            // A broker's configuration problem is a fault to report (in `faults`), not a
            // reason to restart the gateway while other brokers work.
            for f in stats.faults.iter().filter(|f| f.kind == OUTBOX) {
                reasons.push(format!("outbox: {}", f.detail));
            }
            faults = stats.faults;
        }
        HealthReport {
            healthy: reasons.is_empty(),
            alive: reasons.len() == external,
            reasons,
            engine_last_step_ms: step,
            acquisition_alive: alive,
            acquisition_total: total,
            brokers_connected: connected,
            brokers_total: brokers,
            faults,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stalled_engine_and_a_dead_task_are_reasons() {
        let h = Health::new(1_000);
        assert!(h.check(None, 2_000).healthy && h.check(None, 2_000).alive);
        h.acquisition(async {}).await;
        let r = h.check(None, 7_000);
        assert!(!r.healthy);
        // The gateway's own machinery: systemd's watchdog goes unfed.
        assert!(!r.alive);
        assert_eq!(
            r.reasons,
            vec![
                "acquisition: 1 of 1 tasks stopped".to_string(),
                "engine: no policy step for 6.0 s".to_string()
            ]
        );
        h.stepped(7_000);
        assert_eq!(h.check(None, 7_100).reasons.len(), 1);
    }

    #[tokio::test]
    async fn a_task_retired_on_purpose_is_no_reason() {
        let h = Health::new(1_000);
        h.acquisition(async {}).await;
        assert!(!h.check(None, 1_000).healthy);
        h.retire();
        let r = h.check(None, 1_000);
        assert!(r.healthy, "{:?}", r.reasons);
        assert_eq!((r.acquisition_alive, r.acquisition_total), (0, 0));
        h.retire();
        assert_eq!(h.check(None, 1_000).acquisition_total, 0);
    }
}
