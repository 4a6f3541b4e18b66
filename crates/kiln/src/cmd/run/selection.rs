//! Which jobs `kiln run` runs, and their starting states: the whole pipeline, the named jobs
//! (with `--needs`, everything they need), or one `--stage`; each keeps its own `when`, and
//! the manual ones named or given with `--manual` are played when they are reached.

use anyhow::{bail, Context};
use kiln_ci::{JobPlan, PipelinePlan};
use kiln_core::{BuildStatus, JobState, JobWhen};
use std::collections::BTreeSet;

/// What the command line asked to run.
pub struct Wanted<'a> {
    pub jobs: &'a [String],
    pub needs: bool,
    pub stage: Option<&'a str>,
    pub manual: &'a [String],
}

/// The jobs to run, in stage order, and the manual ones to play.
pub struct Selection<'p> {
    pub jobs: Vec<&'p JobPlan>,
    pub play: BTreeSet<String>,
}

pub fn select<'p>(
    plan: &'p PipelinePlan,
    wanted: &Wanted<'_>,
    ref_name: &str,
) -> anyhow::Result<Selection<'p>> {
    let find = |name: &str| {
        plan.jobs
            .iter()
            .find(|j| j.name == name)
            .with_context(|| format!("no job named {name:?} for ref {ref_name}"))
    };
    let mut chosen: Vec<&JobPlan> = match (wanted.stage, wanted.jobs.is_empty()) {
        (Some(stage), _) => {
            let in_stage: Vec<&JobPlan> = plan.jobs.iter().filter(|j| j.stage == stage).collect();
            if in_stage.is_empty() {
                bail!("no job in stage {stage:?} for ref {ref_name}");
            }
            in_stage
        }
        (None, true) => plan.jobs.iter().collect(),
        (None, false) => {
            let mut named = Vec::new();
            for name in wanted.jobs {
                named.push(find(name)?);
            }
            if wanted.needs {
                named = with_needs(plan, named);
            }
            named
        }
    };
    // A job named twice runs once.
    let mut seen = BTreeSet::new();
    chosen.retain(|j| seen.insert(j.name.as_str()));
    chosen.sort_by_key(|j| j.stage_idx);
    let mut play: BTreeSet<String> = wanted.manual.iter().cloned().collect();
    // A manual job named on the command line is meant to run.
    play.extend(wanted.jobs.iter().cloned());
    for name in wanted.manual {
        find(name)?;
    }
    Ok(Selection { jobs: chosen, play })
}

/// `jobs` and, transitively, every job their `needs:` name.
fn with_needs<'p>(plan: &'p PipelinePlan, jobs: Vec<&'p JobPlan>) -> Vec<&'p JobPlan> {
    let mut seen: BTreeSet<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    let mut out = jobs.clone();
    let mut todo = jobs;
    while let Some(job) = todo.pop() {
        for need in job.needs.iter().flatten() {
            if let Some(found) = plan.jobs.iter().find(|j| j.name == need.job) {
                if seen.insert(found.name.as_str()) {
                    out.push(found);
                    todo.push(found);
                }
            }
        }
    }
    out
}

/// The processing states of the selected jobs; `needs` keep only selected jobs.
pub fn states(selection: &Selection<'_>) -> Vec<JobState> {
    let names: Vec<&str> = selection.jobs.iter().map(|j| j.name.as_str()).collect();
    selection
        .jobs
        .iter()
        .enumerate()
        .map(|(i, job)| JobState {
            id: i as i64 + 1,
            name: job.name.clone(),
            stage_idx: job.stage_idx as i64,
            status: BuildStatus::Created,
            when: JobWhen::parse(job.when.as_str()),
            allow_failure: job.allow_failure,
            needs: job.needs.as_ref().map(|n| {
                n.iter()
                    .map(|n| n.job.clone())
                    .filter(|j| names.contains(&j.as_str()))
                    .collect()
            }),
            retried: false,
        })
        .collect()
}

/// `kiln run --list`: each job with its stage, `when` and needs.
pub fn list(plan: &PipelinePlan) {
    println!("{:<30} {:<12} {:<12} needs", "job", "stage", "when");
    for job in &plan.jobs {
        let needs = match &job.needs {
            None => "(stage order)".to_owned(),
            Some(needs) => needs
                .iter()
                .map(|n| n.job.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        println!(
            "{:<30} {:<12} {:<12} {needs}",
            job.name,
            job.stage,
            job.when.as_str()
        );
    }
}
