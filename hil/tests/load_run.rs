//! A small, bounded load run end to end: simulated devices, the gateway process, the
//! embedded broker and the latency probes. The figures of the full run are in
//! docs/performance.md; this only checks the run works and its numbers are sane.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use firebreak_hil::load::{LoadArgs, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_devices_for_a_few_seconds() {
    let Some(bin) = std::env::var_os("FIREBREAK_BIN") else {
        assert!(
            std::env::var_os("FIREBREAK_REQUIRE_PEERS").is_none(),
            "FIREBREAK_BIN is not set: run scripts/test.sh"
        );
        eprintln!("SKIPPED: FIREBREAK_BIN not set");
        return;
    };
    let args = LoadArgs {
        devices: 50,
        registers: 32,
        interval: 500,
        duration: 6,
        warmup: 2,
        probes: 4,
        gateway_bin: Some(bin.into()),
        json: None,
        no_telemetry: false,
    };
    let mut progress = Vec::new();
    let r = run(&args, &mut progress).await.unwrap();
    assert_eq!(r.target_polls_per_s, 100.0);
    // Polling keeps up (a debug build on a shared machine: generous bounds).
    assert!(r.polls_per_s > 80.0 && r.polls_per_s < 120.0, "{r:?}");
    assert_eq!(r.registers_per_s, r.polls_per_s * 32.0);
    assert!(r.peak_rss_mib > 1.0 && r.peak_rss_mib < 64.0, "{r:?}");
    // Every probe's trigger arrived, after a register change, within a few intervals.
    assert_eq!(r.probes_missed, 0, "{r:?}");
    assert!(r.probes >= 2, "{r:?}");
    let p99 = r.latency_p99_ms.unwrap();
    assert!(p99 > 0.0 && p99 < 3000.0, "{r:?}");
}
