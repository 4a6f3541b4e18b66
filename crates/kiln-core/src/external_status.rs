//! Commit statuses reported from outside (`POST /projects/:id/statuses/:sha`): the moves
//! GitLab's `CommitStatus` state machine makes for a reported state. They are looser than a
//! runner's build (an external system may report `success` without ever saying `running`),
//! so they have their own table instead of widening `BuildStatus::apply`.

use crate::BuildStatus;
use std::fmt;

/// A reported state the status cannot reach from where it is, in GitLab's words
/// (`Cannot transition status via :run from :running …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportRefused {
    pub event: &'static str,
    pub from: BuildStatus,
}

impl fmt::Display for ReportRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cannot transition status via :{event} from :{from} (Reason(s): Status cannot transition via \"{event}\")",
            event = self.event,
            from = self.from.as_str()
        )
    }
}

impl std::error::Error for ReportRefused {}

/// The statuses a status now `from` (created, pending or running: finished ones are never
/// updated, a new status is made instead) passes through to become `reported`, in order.
/// GitLab applies `enqueue` then `run` for `running`, `success`, `drop`, `cancel` or `skip`
/// for the others.
pub fn path(from: BuildStatus, reported: BuildStatus) -> Result<Vec<BuildStatus>, ReportRefused> {
    use BuildStatus as S;
    let refused = |event| Err(ReportRefused { event, from });
    match (reported, from) {
        (S::Pending, S::Created) => Ok(vec![S::Pending]),
        (S::Pending, _) => refused("enqueue"),
        (S::Running, S::Created) => Ok(vec![S::Pending, S::Running]),
        (S::Running, S::Pending) => Ok(vec![S::Running]),
        (S::Running, _) => refused("run"),
        (S::Success | S::Failed | S::Canceled, S::Created | S::Pending | S::Running) => {
            Ok(vec![reported])
        }
        (S::Success, _) => refused("success"),
        (S::Failed, _) => refused("drop"),
        (S::Canceled, _) => refused("cancel"),
        (S::Skipped, S::Created) => Ok(vec![S::Skipped]),
        (S::Skipped, _) => refused("skip"),
        (S::Created | S::Manual, _) => refused("enqueue"),
    }
}

/// The states an external status may be given, as the API accepts them.
pub const REPORTABLE: [BuildStatus; 6] = [
    BuildStatus::Pending,
    BuildStatus::Running,
    BuildStatus::Success,
    BuildStatus::Failed,
    BuildStatus::Canceled,
    BuildStatus::Skipped,
];

#[cfg(test)]
mod tests {
    use super::*;
    use BuildStatus as S;

    #[test]
    fn reported_states_move_as_gitlab_commit_statuses() {
        assert_eq!(
            path(S::Created, S::Running),
            Ok(vec![S::Pending, S::Running])
        );
        assert_eq!(path(S::Created, S::Success), Ok(vec![S::Success]));
        assert_eq!(path(S::Running, S::Failed), Ok(vec![S::Failed]));
        assert_eq!(path(S::Pending, S::Running), Ok(vec![S::Running]));
        assert_eq!(path(S::Created, S::Skipped), Ok(vec![S::Skipped]));
        let again = path(S::Running, S::Running).unwrap_err();
        assert_eq!(
            again.to_string(),
            "Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")"
        );
        assert_eq!(path(S::Pending, S::Pending).unwrap_err().event, "enqueue");
        assert_eq!(path(S::Running, S::Skipped).unwrap_err().event, "skip");
    }
}
