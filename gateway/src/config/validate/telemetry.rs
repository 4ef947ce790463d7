//! The `[telemetry]` section: how often devices' values go out, and their deadbands.

use super::*;
use crate::telemetry::TelemetryConfig;

impl Validator<'_> {
    pub(super) fn telemetry(
        &self,
        raw: Option<RawTelemetry>,
    ) -> Result<TelemetryConfig, ConfigError> {
        let mut config = TelemetryConfig::default();
        let Some(raw) = raw else {
            return Ok(config);
        };
        config.enabled = raw.enabled.unwrap_or(true);
        if let Some(every) = raw.every_s {
            if !(1..=3600).contains(&every) {
                return Err(self.err(
                    "telemetry.every_s",
                    format!("{every} is not 1 to 3600 seconds"),
                ));
            }
            config.every = Duration::from_secs(every);
        }
        if let Some(min) = raw.min_interval_ms {
            if min < 100 || Duration::from_millis(min) > config.every {
                return Err(self.err(
                    "telemetry.min_interval_ms",
                    format!(
                        "{min} is not 100 ms to every_s ({} s)",
                        config.every.as_secs()
                    ),
                ));
            }
            config.min_interval = Duration::from_millis(min);
        }
        if let Some(queue) = raw.queue {
            if !(1..=100_000).contains(&queue) {
                return Err(self.err(
                    "telemetry.queue",
                    format!("{queue} is not 1 to 100000 messages"),
                ));
            }
            config.queue = queue;
        }
        for (name, band) in raw.deadbands {
            let at = format!("telemetry.deadbands.{name}");
            let signal =
                Signal::from_name(&name).ok_or_else(|| self.err(&at, "is not a signal name"))?;
            if !band.is_finite() || band < 0.0 {
                return Err(self.err(&at, format!("{band} is not a finite number >= 0")));
            }
            config.deadbands.insert(signal, band);
        }
        Ok(config)
    }
}
