//! The generated campaign: thousands of seeded timelines from the domain notes, replayed
//! through the deterministic policy engine in process (docs/campaign.md).
//!
//! Nuisance timelines (a probe failing, a harness fault, a runtime glitch, a generator
//! transfer, a network cut …) must never reach `evacuate`; fire and outage timelines must
//! reach it at least the evacuation budget before the servers lose power. Each timeline is
//! reproducible from (family, seed): `firebreak policy campaign --family F --replay SEED`.

pub mod families;
pub mod site;

use std::io::Write;

use firebreak_protocols::{IdError, Level};
use serde::Serialize;

use crate::policy::Policy;

pub use families::{Expect, Family, Timeline, generate};
pub use site::{Run, Site, simulate};

/// `firebreak policy campaign …`.
#[derive(Debug, Clone, clap::Args)]
pub struct CampaignArgs {
    /// Nuisance timelines, shared among the nuisance families.
    #[arg(long, default_value_t = 10_000)]
    pub nuisance: usize,
    /// Fire and outage timelines, shared among those families.
    #[arg(long, default_value_t = 10_000)]
    pub fires: usize,
    /// The campaign's seed: every timeline's seed derives from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A rules file instead of the built-in rules.
    #[arg(long)]
    pub rules: Option<std::path::PathBuf>,
    /// Only this family (all of --nuisance or --fires go to it).
    #[arg(long)]
    pub family: Option<String>,
    /// With --family: replay the timeline of this seed and print what happened.
    #[arg(long, requires = "family")]
    pub replay: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Threads (default: the available parallelism).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Failures listed per family (all are counted).
    #[arg(long, default_value_t = 10)]
    pub list: usize,
}

/// Why the campaign could not run.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// An id of the simulated site is invalid (a bug).
    #[error("campaign site: {0}")]
    Id(#[from] IdError),
    /// `--family` names no family.
    #[error("--family: no family named {0:?} (families: {1})")]
    UnknownFamily(String, String),
    /// Writing failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    /// JSON failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// How one timeline went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// As expected.
    Ok,
    /// A nuisance reached `prepare` (counted, not a failure).
    FalsePrepare,
    /// A nuisance reached `evacuate`.
    FalseEvacuate,
    /// No `evacuate` before the power loss.
    Missed,
    /// `evacuate` less than the budget before the power loss.
    Late,
}

/// One timeline's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Family name.
    pub family: &'static str,
    /// Seed.
    pub seed: u64,
    /// Verdict.
    pub verdict: Verdict,
    /// Whether the fire/outage was catchable with the sensors alive (nuisances: true).
    pub catchable: bool,
    /// Highest site level.
    pub max: Level,
    /// Lead time in seconds (power loss − first site `evacuate`), when evacuated before it.
    pub lead_s: Option<f64>,
    /// Engine steps.
    pub steps: u64,
}

/// Per-family figures.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyReport {
    /// Name.
    pub family: &'static str,
    /// `nuisance` or `fire`.
    pub kind: &'static str,
    /// Timelines run.
    pub runs: usize,
    /// Nuisances that reached `evacuate`.
    pub false_evacuate: usize,
    /// Nuisances that reached `prepare` but not `evacuate`.
    pub false_prepare: usize,
    /// Fires/outages the sensors could not catch in time (physics; see `why`).
    pub uncatchable: usize,
    /// Catchable ones never evacuated before power loss.
    pub missed: usize,
    /// Catchable ones evacuated, but less than the budget before power loss.
    pub late: usize,
    /// Uncatchable ones missed or late (expected).
    pub uncatchable_missed_or_late: usize,
    /// Lead time percentiles (p5, p50, p95), seconds, over those evacuated before power loss.
    pub lead_s: Option<[f64; 3]>,
    /// Failures (family goal), by seed: the first `--list` of them.
    pub failing_seeds: Vec<u64>,
}

/// The campaign's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Campaign seed.
    pub seed: u64,
    /// The evacuation budget judged against.
    pub budget_s: u32,
    /// Per family.
    pub families: Vec<FamilyReport>,
    /// Nuisance timelines.
    pub nuisance_runs: usize,
    /// Fire/outage timelines.
    pub fire_runs: usize,
    /// Nuisances that reached evacuate.
    pub false_evacuate: usize,
    /// Nuisances that reached prepare (not evacuate).
    pub false_prepare: usize,
    /// Catchable fires/outages missed.
    pub missed: usize,
    /// Catchable fires/outages late.
    pub late: usize,
    /// Fires/outages uncatchable by the sensors alive.
    pub uncatchable: usize,
    /// Engine steps in all.
    pub steps: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl Report {
    /// Whether every goal is met: no false evacuate, no catchable fire missed or late.
    pub fn goals_met(&self) -> bool {
        self.false_evacuate == 0 && self.missed == 0 && self.late == 0
    }
}

/// SplitMix64: the seed of timeline `i` of a campaign seeded `seed`.
pub fn timeline_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i.wrapping_add(1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs one timeline and judges it.
pub fn judge(
    family: Family,
    seed: u64,
    policy: &Policy,
) -> Result<(Outcome, Timeline, Run), IdError> {
    judge_traced(family, seed, policy, false)
}

fn judge_traced(
    family: Family,
    seed: u64,
    policy: &Policy,
    trace: bool,
) -> Result<(Outcome, Timeline, Run), IdError> {
    let budget = f64::from(policy.evacuation_budget_s);
    let tl = generate(family, seed, budget)?;
    let run = simulate(&tl.site, &tl.world, policy, tl.noise_seed, trace)?;
    let evac = run.first_s.get(2).copied().flatten();
    let max = run.max.unwrap_or(Level::Normal);
    let (verdict, catchable, lead_s) = match &tl.world.expect {
        Expect::Nuisance => (
            match max {
                Level::Evacuate => Verdict::FalseEvacuate,
                Level::Prepare => Verdict::FalsePrepare,
                _ => Verdict::Ok,
            },
            true,
            None,
        ),
        Expect::PowerLoss {
            power_loss_s,
            catchable,
            ..
        } => {
            let lead = evac.filter(|e| e <= power_loss_s).map(|e| power_loss_s - e);
            let v = match lead {
                None => Verdict::Missed,
                Some(l) if l < budget => Verdict::Late,
                Some(_) => Verdict::Ok,
            };
            (v, *catchable, lead)
        }
    };
    Ok((
        Outcome {
            family: family.name(),
            seed,
            verdict,
            catchable,
            max,
            lead_s,
            steps: run.steps,
        },
        tl,
        run,
    ))
}

/// Whether an outcome misses its family's goal.
pub fn is_failure(o: &Outcome) -> bool {
    match o.verdict {
        Verdict::FalseEvacuate => true,
        Verdict::Missed | Verdict::Late => o.catchable,
        Verdict::Ok | Verdict::FalsePrepare => false,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
        .unwrap_or(f64::NAN)
}

/// Runs `plan` (family, timelines) with `jobs` threads.
pub fn run_campaign(
    policy: &Policy,
    plan: &[(Family, usize)],
    seed: u64,
    jobs: usize,
    list: usize,
) -> Result<Report, CampaignError> {
    let started = std::time::Instant::now();
    let work: Vec<(Family, u64)> = plan
        .iter()
        .flat_map(|&(f, n)| (0..n as u64).map(move |i| (f, timeline_seed(seed ^ f_salt(f), i))))
        .collect();
    let jobs = jobs.max(1);
    let results: Vec<Result<Outcome, IdError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|j| {
                let work = &work;
                s.spawn(move || {
                    work.iter()
                        .skip(j)
                        .step_by(jobs)
                        .map(|&(f, sd)| judge(f, sd, policy).map(|r| r.0))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut outcomes = Vec::with_capacity(results.len());
    for r in results {
        outcomes.push(r?);
    }
    let mut families = Vec::new();
    for &(f, _) in plan {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.family == f.name()).collect();
        let count = |v: Verdict, catchable: bool| {
            mine.iter()
                .filter(|o| o.verdict == v && o.catchable == catchable)
                .count()
        };
        let mut leads: Vec<f64> = mine.iter().filter_map(|o| o.lead_s).collect();
        leads.sort_by(f64::total_cmp);
        let mut failing: Vec<u64> = mine
            .iter()
            .filter(|o| is_failure(o))
            .map(|o| o.seed)
            .collect();
        failing.truncate(list);
        families.push(FamilyReport {
            family: f.name(),
            kind: if f.is_fire() { "fire" } else { "nuisance" },
            runs: mine.len(),
            false_evacuate: count(Verdict::FalseEvacuate, true),
            false_prepare: count(Verdict::FalsePrepare, true),
            uncatchable: mine.iter().filter(|o| !o.catchable).count(),
            missed: count(Verdict::Missed, true),
            late: count(Verdict::Late, true),
            uncatchable_missed_or_late: count(Verdict::Missed, false) + count(Verdict::Late, false),
            lead_s: (!leads.is_empty()).then(|| {
                [
                    percentile(&leads, 5.0),
                    percentile(&leads, 50.0),
                    percentile(&leads, 95.0),
                ]
            }),
            failing_seeds: failing,
        });
    }
    let sum = |k: &str, g: fn(&FamilyReport) -> usize| {
        families
            .iter()
            .filter(|f| k.is_empty() || f.kind == k)
            .map(g)
            .sum::<usize>()
    };
    Ok(Report {
        seed,
        budget_s: policy.evacuation_budget_s,
        nuisance_runs: sum("nuisance", |f| f.runs),
        fire_runs: sum("fire", |f| f.runs),
        false_evacuate: sum("", |f| f.false_evacuate),
        false_prepare: sum("", |f| f.false_prepare),
        missed: sum("", |f| f.missed),
        late: sum("", |f| f.late),
        uncatchable: sum("", |f| f.uncatchable),
        steps: outcomes.iter().map(|o| o.steps).sum(),
        seconds: started.elapsed().as_secs_f64(),
        families,
    })
}

fn f_salt(f: Family) -> u64 {
    // Different families draw different seeds from one campaign seed.
    f.name()
        .bytes()
        .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b))
}

/// The plan: `nuisance` timelines shared among the nuisance families, `fires` among the
/// fire/outage ones; or all of one count to one family.
pub fn plan(nuisance: usize, fires: usize, only: Option<Family>) -> Vec<(Family, usize)> {
    if let Some(f) = only {
        return vec![(f, if f.is_fire() { fires } else { nuisance })];
    }
    let share = |n: usize, fams: &[Family]| -> Vec<(Family, usize)> {
        let k = fams.len().max(1);
        fams.iter()
            .enumerate()
            .map(|(i, &f)| (f, n / k + usize::from(i < n % k)))
            .collect()
    };
    let mut p = share(nuisance, Family::NUISANCE);
    p.extend(share(fires, Family::FIRE));
    p
}

fn fmt_s(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "-".to_string()
    }
}

/// Prints the report as a table.
pub fn print_report(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<22} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}  {:>15}",
        "family",
        "runs",
        "f.evac",
        "f.prep",
        "uncat",
        "missed",
        "late",
        "unc.m/l",
        "lead p5/p50/p95"
    )?;
    for f in &r.families {
        let lead = f.lead_s.map_or("-".to_string(), |[a, b, c]| {
            format!("{}/{}/{}", fmt_s(a), fmt_s(b), fmt_s(c))
        });
        let (fe, fp, un, mi, la, ul) = if f.kind == "fire" {
            (
                "-".to_string(),
                "-".to_string(),
                f.uncatchable.to_string(),
                f.missed.to_string(),
                f.late.to_string(),
                f.uncatchable_missed_or_late.to_string(),
            )
        } else {
            (
                f.false_evacuate.to_string(),
                f.false_prepare.to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
            )
        };
        writeln!(
            out,
            "{:<22} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}  {:>15}",
            f.family, f.runs, fe, fp, un, mi, la, ul, lead
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "nuisance: {} timelines, false evacuate {} (goal 0), false prepare {} ({:.2} %)",
        r.nuisance_runs,
        r.false_evacuate,
        r.false_prepare,
        100.0 * r.false_prepare as f64 / r.nuisance_runs.max(1) as f64
    )?;
    writeln!(
        out,
        "fire/outage: {} timelines, {} uncatchable by the sensors alive; catchable: missed {}, late {} (goal 0; budget {} s)",
        r.fire_runs, r.uncatchable, r.missed, r.late, r.budget_s
    )?;
    writeln!(
        out,
        "seed {}, {} engine steps, {:.1} s",
        r.seed, r.steps, r.seconds
    )?;
    let failing: Vec<&FamilyReport> = r
        .families
        .iter()
        .filter(|f| !f.failing_seeds.is_empty())
        .collect();
    if !failing.is_empty() {
        writeln!(
            out,
            "\nfailing (family seed; replay: --family F --replay SEED):"
        )?;
        for f in failing {
            for s in &f.failing_seeds {
                writeln!(out, "{} {}", f.family, s)?;
            }
        }
    }
    writeln!(
        out,
        "\n{}",
        if r.goals_met() {
            "goals met"
        } else {
            "GOALS MISSED"
        }
    )
}

/// Replays one timeline and prints it.
pub fn print_replay(
    family: Family,
    seed: u64,
    policy: &Policy,
    out: &mut impl Write,
) -> Result<Outcome, CampaignError> {
    let (o, tl, run) = judge_traced(family, seed, policy, true)?;
    let t0 = tl.world.t0_s;
    writeln!(out, "{} seed {}", family.name(), seed)?;
    writeln!(out, "site: {}", tl.site.describe())?;
    writeln!(out, "what: {}", tl.world.what)?;
    match &tl.world.expect {
        Expect::Nuisance => writeln!(out, "expect: never evacuate")?,
        Expect::PowerLoss {
            power_loss_s,
            catchable,
            why,
        } => writeln!(
            out,
            "expect: evacuate ≥ budget before power loss at T{:+.0}s; {}",
            power_loss_s - t0,
            if *catchable {
                "catchable".to_string()
            } else {
                format!("uncatchable: {why}")
            }
        )?,
    }
    for (t, level, why) in &run.trace {
        writeln!(out, "  T{:+7.1}s site {:<8} {}", t - t0, level.name(), why)?;
    }
    writeln!(
        out,
        "verdict: {:?}{}",
        o.verdict,
        o.lead_s
            .map_or(String::new(), |l| format!(", lead {l:.0} s"))
    )?;
    Ok(o)
}

/// `firebreak policy campaign`: returns whether the goals were met.
pub fn campaign(
    args: CampaignArgs,
    policy: Policy,
    out: &mut impl Write,
) -> Result<bool, CampaignError> {
    let only = match &args.family {
        Some(name) => Some(Family::from_name(name).ok_or_else(|| {
            CampaignError::UnknownFamily(
                name.clone(),
                Family::NUISANCE
                    .iter()
                    .chain(Family::FIRE)
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })?),
        None => None,
    };
    if let (Some(f), Some(seed)) = (only, args.replay) {
        let o = print_replay(f, seed, &policy, out)?;
        return Ok(!is_failure(&o));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let report = run_campaign(
        &policy,
        &plan(args.nuisance, args.fires, only),
        args.seed,
        jobs,
        args.list,
    )?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        print_report(&report, out)?;
    }
    Ok(report.goals_met())
}
