//! The hardware-in-loop rig: device simulators, scenario timelines and the rig that replays
//! them against the gateway as a separate process, measuring lead time and false alarms.
//!
//! Built so far: [`timeline`], the values a simulated signal takes over a scenario's time.
//! Simulators, scenario files and the rig follow (see the HIL issue).

#![warn(missing_docs)]

pub mod broker;
pub mod timeline;
