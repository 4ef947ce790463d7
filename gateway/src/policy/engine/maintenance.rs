//! Maintenance: devices, or channels of a device, whose readings are not evidence for a while
//! (docs/policy.md, "Maintenance").
//!
//! A reading under maintenance is taken in and dropped: it fires no rule, holds no level,
//! corroborates nothing, excuses no jump of another probe, is no sensor fault; a device under
//! maintenance that goes silent is not `comm-lost` for any rule, and is left out of a
//! zone's "all devices". What it had said before is forgotten when maintenance begins (its
//! detectors, its plausibility history, its UPS outlook), so it neither holds a level nor
//! jumps when it comes back. The engine then judges exactly as if the device or channel did
//! not exist: every other witness counts as before, and nothing of the maintained one can
//! take evidence away from another (`maintenance_is_the_device_not_existing` in the tests).

use firebreak_protocols::DeviceId;

use super::plausibility::Plausibility;
use super::power::UPS_SIGNALS;
use super::{Detector, Engine};

impl Engine {
    /// Puts exactly these devices (an entry without a channel) and channels of devices under
    /// maintenance; every other device and channel counts again, from its next reading.
    /// Returns the devices the engine does not know (ignored).
    pub fn set_maintenance(&mut self, entries: &[(DeviceId, Option<u8>)]) -> Vec<DeviceId> {
        let mut unknown = Vec::new();
        for dev in &mut self.devices {
            dev.out_all = false;
            dev.out_channels.clear();
        }
        for (device, channel) in entries {
            let Some(dev) = self
                .device_index
                .get(device)
                .and_then(|&d| self.devices.get_mut(d))
            else {
                unknown.push(device.clone());
                continue;
            };
            match channel {
                None => dev.out_all = true,
                Some(c) if !dev.out_channels.contains(c) => dev.out_channels.push(*c),
                Some(_) => {}
            }
        }
        for i in 0..self.sources.len() {
            let Some(src) = self.sources.get(i) else {
                continue;
            };
            let out = self
                .devices
                .get(src.device)
                .is_some_and(|d| d.out(src.channel));
            let entering = out && !src.out;
            let (d, signal) = (src.device, src.signal);
            if let Some(src) = self.sources.get_mut(i) {
                src.out = out;
                if entering {
                    forget(src);
                }
            }
            if entering && let Some(dev) = self.devices.get_mut(d) {
                if UPS_SIGNALS.contains(&signal) {
                    dev.ups = None;
                }
                if let Some(cm) = dev.common_mode.as_mut() {
                    cm.channels.retain(|&(c, _)| c != i);
                    if cm.channels.is_empty() {
                        dev.common_mode = None;
                    }
                }
            }
        }
        let sources = &self.sources;
        self.faulted
            .retain(|&i| sources.get(i).is_some_and(|s| !s.out));
        unknown
    }

    /// Whether a device, or one channel of it, is under maintenance now (for tests: the
    /// gateway keeps its own list, `crate::maintenance`).
    #[cfg(test)]
    pub(crate) fn under_maintenance(&self, device: &DeviceId, channel: Option<u8>) -> bool {
        self.device_index
            .get(device)
            .and_then(|&d| self.devices.get(d))
            .is_some_and(|d| match channel {
                None => d.out_all,
                Some(c) => d.out(c),
            })
    }
}

/// Forgets what a source said: as if it had never given a reading.
fn forget(src: &mut super::Source) {
    for w in &mut src.watches {
        w.fired = false;
        w.lost = None;
        w.value = f32::NAN;
        w.since_ms = 0;
        match &mut w.detector {
            Detector::Band(band) => band.reset(),
            Detector::Rate(rate, band) => {
                rate.clear();
                band.reset();
            }
            Detector::State => {}
        }
    }
    src.check = Plausibility::new(src.signal);
    src.reported_fault = false;
    src.last = None;
}
