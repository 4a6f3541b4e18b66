//! Pipeline processing, GitLab's way (`atomic_processing_service.rb`, `process_build_service.rb`,
//! `status/composite.rb`): given the jobs of a pipeline, decide which `created` jobs start,
//! wait for a play, or are skipped, and what the pipeline's status is. Pure: the store applies
//! the decisions in one transaction and calls this again after every job status change.

use crate::status::{BuildEvent, BuildStatus};
use std::collections::HashMap;

/// When a job may run relative to what came before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobWhen {
    OnSuccess,
    OnFailure,
    Always,
    Manual,
}

impl JobWhen {
    pub fn parse(s: &str) -> JobWhen {
        match s {
            "on_failure" => JobWhen::OnFailure,
            "always" => JobWhen::Always,
            "manual" => JobWhen::Manual,
            // `delayed` is treated as on_success: Kiln has no scheduler for start_in yet.
            _ => JobWhen::OnSuccess,
        }
    }
}

/// One job as processing sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub id: i64,
    pub name: String,
    pub stage_idx: i64,
    pub status: BuildStatus,
    pub when: JobWhen,
    pub allow_failure: bool,
    /// `None`: gated by earlier stages. `Some(names)`: a DAG job gated by those jobs only.
    pub needs: Option<Vec<String>>,
    /// Replaced by a retry; no longer counts.
    pub retried: bool,
}

/// A pipeline's (or a group of jobs') overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineStatus {
    Created,
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
    Skipped,
    Manual,
}

impl PipelineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineStatus::Created => "created",
            PipelineStatus::Pending => "pending",
            PipelineStatus::Running => "running",
            PipelineStatus::Success => "success",
            PipelineStatus::Failed => "failed",
            PipelineStatus::Canceled => "canceled",
            PipelineStatus::Skipped => "skipped",
            PipelineStatus::Manual => "manual",
        }
    }

    /// Done one way or another: later jobs may be decided.
    pub fn is_complete(self) -> bool {
        matches!(
            self,
            PipelineStatus::Success
                | PipelineStatus::Failed
                | PipelineStatus::Canceled
                | PipelineStatus::Skipped
        )
    }
}

/// The statuses composite.rb works with, after rewriting allowed failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Plain(BuildStatus),
    /// A failed or canceled job that was allowed to fail.
    SuccessWithWarnings,
    /// A manual job that is allowed to fail (does not block).
    Ignored,
}

fn seen(status: BuildStatus, allow_failure: bool) -> Seen {
    match status {
        BuildStatus::Failed | BuildStatus::Canceled if allow_failure => Seen::SuccessWithWarnings,
        BuildStatus::Manual if allow_failure => Seen::Ignored,
        other => Seen::Plain(other),
    }
}

/// Which kinds of `Seen` a set of jobs holds. composite.rb asks only "are all of them among
/// these?" and "is any of them this?", so the kinds present decide the status: a set can be
/// summed up as it grows, and each job's earlier stages cost nothing to re-read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Kinds(u16);

impl Kinds {
    fn bit(seen: Seen) -> u16 {
        match seen {
            Seen::Plain(status) => 1 << (status as u16),
            Seen::SuccessWithWarnings => 1 << 14,
            Seen::Ignored => 1 << 15,
        }
    }

    fn add(&mut self, status: BuildStatus, allow_failure: bool) {
        self.0 |= Self::bit(seen(status, allow_failure));
    }

    fn of(jobs: impl IntoIterator<Item = (BuildStatus, bool)>) -> Kinds {
        let mut kinds = Kinds::default();
        for (status, allow_failure) in jobs {
            kinds.add(status, allow_failure);
        }
        kinds
    }

    fn has(self, seen: Seen) -> bool {
        self.0 & Self::bit(seen) != 0
    }

    fn only(self, allowed: &[Seen]) -> bool {
        let mask = allowed.iter().fold(0, |m, s| m | Self::bit(*s));
        self.0 & !mask == 0
    }
}

/// GitLab's composite status of a set of (status, allow_failure); `None` for an empty set.
/// `dag` selects the stricter reading used for a DAG job's needs.
pub fn composite(
    jobs: impl IntoIterator<Item = (BuildStatus, bool)>,
    dag: bool,
) -> Option<PipelineStatus> {
    composite_of(Kinds::of(jobs), dag)
}

fn composite_of(kinds: Kinds, dag: bool) -> Option<PipelineStatus> {
    use BuildStatus as B;
    use PipelineStatus as P;
    if kinds == Kinds::default() {
        return None;
    }
    let only = |allowed: &[Seen]| kinds.only(allowed);
    let any = |status: B| kinds.has(Seen::Plain(status));
    let (sww, ign) = (Seen::SuccessWithWarnings, Seen::Ignored);
    let p = Seen::Plain;
    if dag {
        if any(B::Skipped) || kinds.has(ign) {
            return Some(P::Skipped);
        }
        if !only(&[
            p(B::Success),
            p(B::Failed),
            p(B::Canceled),
            p(B::Skipped),
            sww,
        ]) {
            return Some(P::Pending);
        }
    }
    let status = if only(&[p(B::Skipped), ign]) {
        P::Skipped
    } else if only(&[p(B::Success), p(B::Skipped), sww, ign]) {
        P::Success
    } else if only(&[p(B::Created), sww, ign]) {
        P::Created
    } else if only(&[p(B::Canceled), p(B::Success), p(B::Skipped), sww, ign]) {
        P::Canceled
    } else if only(&[p(B::Pending), p(B::Created), p(B::Skipped), sww, ign]) {
        P::Pending
    } else if any(B::Running) || any(B::Pending) {
        P::Running
    } else if any(B::Manual) {
        P::Manual
    } else if any(B::Created) {
        P::Running
    } else {
        P::Failed
    };
    Some(status)
}

/// The status of a pipeline made of `jobs` (retried jobs left out); `skipped` when empty.
pub fn pipeline_status(jobs: &[JobState]) -> PipelineStatus {
    let current = jobs
        .iter()
        .filter(|j| !j.retried)
        .map(|j| (j.status, j.allow_failure));
    composite(current, false).unwrap_or(PipelineStatus::Skipped)
}

/// Decides what each `created` job does now. Decisions made earlier in the pass count for
/// later jobs, as in GitLab's atomic processing. Returns (job id, event) to apply in order.
/// Linear in the jobs (and their needs): the earlier stages' statuses are summed up once per
/// stage, not read again for every job.
pub fn process(jobs: &[JobState]) -> Vec<(i64, BuildEvent)> {
    let mut current: Vec<&JobState> = jobs.iter().filter(|j| !j.retried).collect();
    current.sort_by_key(|j| (j.stage_idx, j.id));
    let mut status: HashMap<i64, BuildStatus> = current.iter().map(|j| (j.id, j.status)).collect();
    // The newest non-retried job of each name, for `needs`.
    let by_name: HashMap<&str, &JobState> = current.iter().map(|j| (j.name.as_str(), *j)).collect();
    let mut decisions = Vec::new();
    // The kinds of every job in the stages before the current one, and the current stage's
    // jobs, added once the stage is left (a job's own stage does not gate it).
    let mut earlier = Kinds::default();
    let mut this_stage: Option<i64> = None;
    let mut stage_jobs: Vec<&JobState> = Vec::new();
    for job in &current {
        if this_stage != Some(job.stage_idx) {
            for done in stage_jobs.drain(..) {
                let now = status.get(&done.id).copied().unwrap_or(done.status);
                earlier.add(now, done.allow_failure);
            }
            this_stage = Some(job.stage_idx);
        }
        stage_jobs.push(job);
        if status.get(&job.id) != Some(&BuildStatus::Created) {
            continue;
        }
        let previous = match &job.needs {
            Some(needs) => {
                let needed = needs
                    .iter()
                    .filter_map(|name| by_name.get(name.as_str()))
                    .map(|j| {
                        (
                            status.get(&j.id).copied().unwrap_or(j.status),
                            j.allow_failure,
                        )
                    });
                composite(needed, true).unwrap_or(PipelineStatus::Success)
            }
            None => composite_of(earlier, false).unwrap_or(PipelineStatus::Success),
        };
        if !previous.is_complete() {
            continue;
        }
        let go = match job.when {
            JobWhen::OnSuccess | JobWhen::Manual => {
                matches!(previous, PipelineStatus::Success | PipelineStatus::Skipped)
                    && !(job.needs.is_some() && previous == PipelineStatus::Skipped)
            }
            JobWhen::OnFailure => previous == PipelineStatus::Failed,
            JobWhen::Always => matches!(
                previous,
                PipelineStatus::Success | PipelineStatus::Failed | PipelineStatus::Skipped
            ),
        };
        let event = match (go, job.when) {
            (true, JobWhen::Manual) => BuildEvent::AwaitPlay,
            (true, _) => BuildEvent::Enqueue,
            (false, _) => BuildEvent::Skip,
        };
        if let Ok(next) = BuildStatus::Created.apply(event) {
            status.insert(job.id, next);
            decisions.push((job.id, event));
        }
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildStatus as S;
    use PipelineStatus as P;

    fn job(id: i64, stage: i64, status: S) -> JobState {
        JobState {
            id,
            name: format!("job{id}"),
            stage_idx: stage,
            status,
            when: JobWhen::OnSuccess,
            allow_failure: false,
            needs: None,
            retried: false,
        }
    }

    fn with(mut j: JobState, f: impl FnOnce(&mut JobState)) -> JobState {
        f(&mut j);
        j
    }

    #[test]
    fn only_the_first_stage_starts() {
        let jobs = [
            job(1, 0, S::Created),
            job(2, 0, S::Created),
            job(3, 1, S::Created),
        ];
        assert_eq!(
            process(&jobs),
            vec![(1, BuildEvent::Enqueue), (2, BuildEvent::Enqueue)]
        );
        assert_eq!(pipeline_status(&jobs), P::Created);
    }

    #[test]
    fn the_next_stage_starts_when_the_previous_succeeded() {
        let jobs = [
            job(1, 0, S::Success),
            job(2, 0, S::Running),
            job(3, 1, S::Created),
        ];
        assert!(process(&jobs).is_empty());
        let jobs = [
            job(1, 0, S::Success),
            job(2, 0, S::Success),
            job(3, 1, S::Created),
        ];
        assert_eq!(process(&jobs), vec![(3, BuildEvent::Enqueue)]);
    }

    #[test]
    fn a_failure_skips_later_stages_and_runs_on_failure_jobs() {
        let jobs = [
            job(1, 0, S::Failed),
            job(2, 1, S::Created),
            with(job(3, 1, S::Created), |j| j.when = JobWhen::OnFailure),
            with(job(4, 2, S::Created), |j| j.when = JobWhen::Always),
        ];
        // Job 4 (always) waits: stage 1 is not complete while job 3 is pending.
        assert_eq!(
            process(&jobs),
            vec![(2, BuildEvent::Skip), (3, BuildEvent::Enqueue)]
        );
    }

    #[test]
    fn always_jobs_run_after_a_completed_failure() {
        let jobs = [
            job(1, 0, S::Failed),
            job(2, 1, S::Skipped),
            with(job(3, 2, S::Created), |j| j.when = JobWhen::Always),
        ];
        assert_eq!(process(&jobs), vec![(3, BuildEvent::Enqueue)]);
        assert_eq!(pipeline_status(&jobs), P::Running);
    }

    #[test]
    fn allowed_failures_do_not_block() {
        let jobs = [
            with(job(1, 0, S::Failed), |j| j.allow_failure = true),
            job(2, 1, S::Created),
        ];
        assert_eq!(process(&jobs), vec![(2, BuildEvent::Enqueue)]);
        let done = [
            with(job(1, 0, S::Failed), |j| j.allow_failure = true),
            job(2, 1, S::Success),
        ];
        assert_eq!(pipeline_status(&done), P::Success);
    }

    #[test]
    fn manual_jobs_wait_and_block_only_without_allow_failure() {
        let jobs = [
            job(1, 0, S::Success),
            with(job(2, 1, S::Created), |j| {
                j.when = JobWhen::Manual;
                j.allow_failure = true;
            }),
            job(3, 2, S::Created),
        ];
        assert_eq!(
            process(&jobs),
            vec![(2, BuildEvent::AwaitPlay), (3, BuildEvent::Enqueue)]
        );
        let blocking = [
            job(1, 0, S::Success),
            with(job(2, 1, S::Manual), |j| j.when = JobWhen::Manual),
            job(3, 2, S::Created),
        ];
        assert!(process(&blocking).is_empty());
        assert_eq!(pipeline_status(&blocking), P::Manual);
    }

    #[test]
    fn needs_start_a_job_before_its_stage() {
        let jobs = [
            job(1, 0, S::Success),
            job(2, 0, S::Running),
            with(job(3, 1, S::Created), |j| {
                j.needs = Some(vec!["job1".into()])
            }),
            with(job(4, 1, S::Created), |j| j.needs = Some(vec![])),
            job(5, 1, S::Created),
        ];
        assert_eq!(
            process(&jobs),
            vec![(3, BuildEvent::Enqueue), (4, BuildEvent::Enqueue)]
        );
    }

    #[test]
    fn a_skipped_need_skips_the_job() {
        let jobs = [
            job(1, 0, S::Skipped),
            with(job(2, 1, S::Created), |j| {
                j.needs = Some(vec!["job1".into()])
            }),
        ];
        assert_eq!(process(&jobs), vec![(2, BuildEvent::Skip)]);
    }

    #[test]
    fn retried_jobs_no_longer_count() {
        let jobs = [
            with(job(1, 0, S::Failed), |j| j.retried = true),
            with(job(2, 0, S::Success), |j| j.name = "job1".into()),
            job(3, 1, S::Created),
        ];
        assert_eq!(process(&jobs), vec![(3, BuildEvent::Enqueue)]);
        assert_eq!(pipeline_status(&jobs), P::Running);
    }

    #[test]
    fn composite_follows_gitlab() {
        let c = |jobs: &[(S, bool)]| composite(jobs.iter().copied(), false);
        assert_eq!(c(&[]), None);
        assert_eq!(
            c(&[(S::Success, false), (S::Skipped, false)]),
            Some(P::Success)
        );
        assert_eq!(c(&[(S::Skipped, false)]), Some(P::Skipped));
        assert_eq!(
            c(&[(S::Failed, false), (S::Success, false)]),
            Some(P::Failed)
        );
        assert_eq!(
            c(&[(S::Canceled, false), (S::Success, false)]),
            Some(P::Canceled)
        );
        assert_eq!(
            c(&[(S::Pending, false), (S::Created, false)]),
            Some(P::Pending)
        );
        assert_eq!(
            c(&[(S::Running, false), (S::Failed, false)]),
            Some(P::Running)
        );
        assert_eq!(
            c(&[(S::Success, false), (S::Created, false)]),
            Some(P::Running)
        );
        assert_eq!(c(&[(S::Created, false)]), Some(P::Created));
        assert_eq!(
            c(&[(S::Manual, false), (S::Success, false)]),
            Some(P::Manual)
        );
        assert_eq!(
            c(&[(S::Manual, true), (S::Success, false)]),
            Some(P::Success)
        );
        assert_eq!(c(&[(S::Failed, true)]), Some(P::Success));
        assert_eq!(composite([(S::Running, false)], true), Some(P::Pending));
        assert_eq!(
            composite([(S::Skipped, false), (S::Success, false)], true),
            Some(P::Skipped)
        );
    }

    /// The straightforward reading (each job's earlier stages read again, as before the
    /// stage summary): the linear pass must decide exactly as it does.
    fn reference(jobs: &[JobState]) -> Vec<(i64, BuildEvent)> {
        let mut current: Vec<&JobState> = jobs.iter().filter(|j| !j.retried).collect();
        current.sort_by_key(|j| (j.stage_idx, j.id));
        let mut status: HashMap<i64, BuildStatus> =
            current.iter().map(|j| (j.id, j.status)).collect();
        let by_name: HashMap<&str, &JobState> =
            current.iter().map(|j| (j.name.as_str(), *j)).collect();
        let mut decisions = Vec::new();
        for job in &current {
            if status.get(&job.id) != Some(&S::Created) {
                continue;
            }
            let now = |j: &JobState, status: &HashMap<i64, BuildStatus>| {
                (
                    status.get(&j.id).copied().unwrap_or(j.status),
                    j.allow_failure,
                )
            };
            let previous = match &job.needs {
                Some(needs) => composite(
                    needs
                        .iter()
                        .filter_map(|n| by_name.get(n.as_str()))
                        .map(|j| now(j, &status)),
                    true,
                )
                .unwrap_or(P::Success),
                None => composite(
                    current
                        .iter()
                        .filter(|j| j.stage_idx < job.stage_idx)
                        .map(|j| now(j, &status)),
                    false,
                )
                .unwrap_or(P::Success),
            };
            if !previous.is_complete() {
                continue;
            }
            let go = match job.when {
                JobWhen::OnSuccess | JobWhen::Manual => {
                    matches!(previous, P::Success | P::Skipped)
                        && !(job.needs.is_some() && previous == P::Skipped)
                }
                JobWhen::OnFailure => previous == P::Failed,
                JobWhen::Always => matches!(previous, P::Success | P::Failed | P::Skipped),
            };
            let event = match (go, job.when) {
                (true, JobWhen::Manual) => BuildEvent::AwaitPlay,
                (true, _) => BuildEvent::Enqueue,
                (false, _) => BuildEvent::Skip,
            };
            if let Ok(next) = S::Created.apply(event) {
                status.insert(job.id, next);
                decisions.push((job.id, event));
            }
        }
        decisions
    }

    #[test]
    fn the_linear_pass_decides_as_the_straightforward_one_on_random_pipelines() {
        // A fixed linear congruential sequence: the same 3,000 pipelines on every run.
        let mut seed: u64 = 0x6b69_6c6e;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let whens = [
            JobWhen::OnSuccess,
            JobWhen::OnFailure,
            JobWhen::Always,
            JobWhen::Manual,
        ];
        for _ in 0..3_000 {
            let count = 1 + next(12) as i64;
            let jobs: Vec<JobState> = (1..=count)
                .map(|id| {
                    let needs = (next(4) == 0).then(|| {
                        (0..next(3))
                            .map(|_| format!("job{}", 1 + next(count as u64)))
                            .collect()
                    });
                    JobState {
                        id,
                        name: format!("job{id}"),
                        stage_idx: next(4) as i64,
                        status: S::ALL[next(8) as usize],
                        when: whens[next(4) as usize],
                        allow_failure: next(3) == 0,
                        needs,
                        retried: next(10) == 0,
                    }
                })
                .collect();
            assert_eq!(process(&jobs), reference(&jobs), "{jobs:?}");
        }
    }
}
