//! The generated campaign (docs/campaign.md), reduced to what a test run affords: 1,000
//! nuisance and 1,000 fire/outage timelines with a fixed seed, through the default rules.
//! Goals: no nuisance reaches `evacuate`; no fire or outage the sensors alive could catch is
//! missed or late — met by every family but the known limits below, which are bounded so a
//! regression fails. `campaign-regressions.txt` holds the (family, seed) of failures found by
//! full campaigns and since fixed; each is replayed here and must meet its family's goal.
//!
//! The full campaign: `cargo run --release -- policy campaign` (10,000 + 10,000).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

use firebreak_gateway::campaign::{
    self, Expect, Family, generate, is_failure, judge, plan, run_campaign,
};
use firebreak_gateway::policy::Policy;

/// The reduced campaign's seed.
const SEED: u64 = 2026;

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What the engine is known not to tell apart (docs/policy.md, "What the engine cannot tell
/// apart"), per family: the most failures per 1,000 timelines of that family allowed before
/// this test calls it a regression. Every other family must meet its goal exactly (0).
/// The full campaign (seed 1, 10,000 + 10,000) measured, per 1,000 of the family:
/// harness-fault 133 false evacuate (a fault moving two probes and the gas of one node
/// together), generator-transfer 1.5 (a UPS with less runtime than budget + margin and a
/// generator slower than 20 s), generator-fails 11 and generator-trips 10 late (by at most
/// 4 s: runtime under budget + margin at the outage, a UPS that overestimates),
/// fire-offgas-weak 6 missed or late, fire-ups-card-dies 1, fire-offgas-absent 1.
const KNOWN_LIMITS: [(&str, usize); 7] = [
    ("harness-fault", 180),
    ("generator-transfer", 10),
    ("generator-fails", 30),
    ("generator-trips", 30),
    ("fire-offgas-weak", 10),
    ("fire-ups-card-dies", 10),
    ("fire-offgas-absent", 10),
];

#[test]
fn reduced_campaign_meets_the_goals_but_for_the_known_limits() {
    let policy = Policy::default_policy().unwrap();
    let report = run_campaign(&policy, &plan(1000, 1000, None), SEED, jobs(), 5).unwrap();
    let mut text = Vec::new();
    campaign::print_report(&report, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    eprintln!("{text}");
    assert_eq!(report.nuisance_runs, 1000);
    assert_eq!(report.fire_runs, 1000);
    let mut problems = Vec::new();
    for f in &report.families {
        let failures = f.false_evacuate + f.missed + f.late;
        let allowed = KNOWN_LIMITS
            .iter()
            .find(|(name, _)| *name == f.family)
            .map_or(0, |(_, per_1000)| per_1000 * f.runs / 1000);
        if failures > allowed {
            problems.push(format!(
                "{}: {failures} failures in {} timelines, at most {allowed} allowed",
                f.family, f.runs
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the reduced campaign regressed (replay a failure with \
         `firebreak policy campaign --family F --replay SEED`):\n{}\n{text}",
        problems.join("\n")
    );
}

/// `family seed  # comment` lines.
fn regressions() -> Vec<(Family, u64, String)> {
    let text = include_str!("campaign-regressions.txt");
    text.lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (case, comment) = l.split_once('#').unwrap_or((l, ""));
            let mut it = case.split_whitespace();
            let family = it.next().unwrap();
            let seed = it.next().unwrap();
            (
                Family::from_name(family).unwrap_or_else(|| panic!("no family {family:?}")),
                seed.parse().unwrap_or_else(|_| panic!("bad seed {seed:?}")),
                comment.trim().to_string(),
            )
        })
        .collect()
}

#[test]
fn regression_seeds_meet_their_goals() {
    let policy = Policy::default_policy().unwrap();
    let cases = regressions();
    assert!(!cases.is_empty());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(family, seed, comment)| {
            let (o, _, _) = judge(*family, *seed, &policy).unwrap();
            is_failure(&o).then(|| {
                format!(
                    "{} {}: {:?}{} ({comment})",
                    family.name(),
                    seed,
                    o.verdict,
                    o.lead_s
                        .map_or(String::new(), |l| format!(", lead {l:.0} s"))
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} regression timelines miss their goal:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn timelines_are_reproducible_from_family_and_seed() {
    let policy = Policy::default_policy().unwrap();
    for &family in Family::NUISANCE.iter().chain(Family::FIRE) {
        for seed in [1u64, 0xDEAD_BEEF] {
            let (a, ta, ra) = judge(family, seed, &policy).unwrap();
            let (b, tb, rb) = judge(family, seed, &policy).unwrap();
            assert_eq!(a.verdict, b.verdict, "{} {seed}", family.name());
            assert_eq!(a.lead_s, b.lead_s);
            assert_eq!(ra.first_s, rb.first_s);
            assert_eq!(ra.samples, rb.samples);
            assert_eq!(ta.world.what, tb.world.what);
            assert_eq!(Family::from_name(family.name()), Some(family));
        }
    }
}

#[test]
fn fire_timelines_lose_power_and_nuisances_do_not() {
    for &family in Family::NUISANCE.iter().chain(Family::FIRE) {
        for seed in 0..20u64 {
            let tl = generate(family, seed, 300.0).unwrap();
            match (&tl.world.expect, family.is_fire()) {
                (Expect::Nuisance, false) => {}
                (Expect::PowerLoss { power_loss_s, .. }, true) => {
                    assert!(*power_loss_s > tl.world.t0_s, "{} {seed}", family.name());
                }
                (e, _) => panic!("{} {seed}: {e:?}", family.name()),
            }
        }
    }
}
