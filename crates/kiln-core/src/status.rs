//! The build status machine. Every allowed move is a named `BuildEvent` applied to a
//! `BuildStatus`; anything else is a `TransitionError`, never a panic.

use std::fmt;
use std::str::FromStr;

/// The status of one build, with GitLab's wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuildStatus {
    Created,
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
    Skipped,
    Manual,
}

impl BuildStatus {
    pub const ALL: [BuildStatus; 8] = [
        BuildStatus::Created,
        BuildStatus::Pending,
        BuildStatus::Running,
        BuildStatus::Success,
        BuildStatus::Failed,
        BuildStatus::Canceled,
        BuildStatus::Skipped,
        BuildStatus::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Created => "created",
            BuildStatus::Pending => "pending",
            BuildStatus::Running => "running",
            BuildStatus::Success => "success",
            BuildStatus::Failed => "failed",
            BuildStatus::Canceled => "canceled",
            BuildStatus::Skipped => "skipped",
            BuildStatus::Manual => "manual",
        }
    }

    /// GitLab's `complete?`: the build has finished one way or another and may be retried.
    pub fn is_complete(self) -> bool {
        matches!(
            self,
            BuildStatus::Success | BuildStatus::Failed | BuildStatus::Canceled
        )
    }

    /// Whether the build still waits for or holds a runner (GitLab's `active?` plus created/manual).
    pub fn is_cancelable(self) -> bool {
        self.apply(BuildEvent::Cancel).is_ok()
    }

    /// The status after `event`, or why the event does not apply here.
    pub fn apply(self, event: BuildEvent) -> Result<BuildStatus, TransitionError> {
        use BuildEvent as E;
        use BuildStatus as S;
        let to = match (self, event) {
            (S::Created, E::Enqueue) => S::Pending,
            (S::Created, E::Skip) => S::Skipped,
            (S::Created, E::AwaitPlay) => S::Manual,
            (S::Manual, E::Play) => S::Pending,
            (S::Pending, E::Start) => S::Running,
            (S::Running, E::Succeed) => S::Success,
            // A build fails while running (script, timeout), or before it ever ran when no
            // runner can take it or its runner vanished (GitLab's `drop`).
            (S::Running | S::Pending, E::Fail) => S::Failed,
            (S::Created | S::Pending | S::Running | S::Manual, E::Cancel) => S::Canceled,
            // A job skipped because of a failure gets another chance when that job is retried.
            (S::Skipped, E::Reset) => S::Created,
            // Its runner gave it back before the job started (a server shutting down).
            (S::Running, E::Requeue) => S::Pending,
            (from, event) => return Err(TransitionError { from, event }),
        };
        Ok(to)
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown build status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for BuildStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BuildStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// Something that happens to a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildEvent {
    /// Its stage may start: created → pending.
    Enqueue,
    /// An earlier stage failed or its `when` does not fit: created → skipped.
    Skip,
    /// A `when: manual` build reached its stage: created → manual.
    AwaitPlay,
    /// Someone played a manual build: manual → pending.
    Play,
    /// A runner claimed it: pending → running.
    Start,
    /// Its script finished with status 0: running → success.
    Succeed,
    /// Its script failed, timed out, or the build was dropped: running|pending → failed.
    Fail,
    /// Someone canceled it: created|pending|running|manual → canceled.
    Cancel,
    /// A job it waited for was retried: skipped → created, to be processed again.
    Reset,
    /// Its runner gave it back before starting the job: running → pending.
    Requeue,
}

impl BuildEvent {
    pub const ALL: [BuildEvent; 10] = [
        BuildEvent::Enqueue,
        BuildEvent::Skip,
        BuildEvent::AwaitPlay,
        BuildEvent::Play,
        BuildEvent::Start,
        BuildEvent::Succeed,
        BuildEvent::Fail,
        BuildEvent::Cancel,
        BuildEvent::Reset,
        BuildEvent::Requeue,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} build cannot {event:?}")]
pub struct TransitionError {
    pub from: BuildStatus,
    pub event: BuildEvent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildEvent as E;
    use BuildStatus as S;

    /// Every allowed move, written out once. Every pair not listed must be refused.
    const ALLOWED: &[(BuildStatus, BuildEvent, BuildStatus)] = &[
        (S::Created, E::Enqueue, S::Pending),
        (S::Created, E::Skip, S::Skipped),
        (S::Created, E::AwaitPlay, S::Manual),
        (S::Created, E::Cancel, S::Canceled),
        (S::Manual, E::Play, S::Pending),
        (S::Manual, E::Cancel, S::Canceled),
        (S::Pending, E::Start, S::Running),
        (S::Pending, E::Fail, S::Failed),
        (S::Pending, E::Cancel, S::Canceled),
        (S::Running, E::Succeed, S::Success),
        (S::Running, E::Fail, S::Failed),
        (S::Running, E::Cancel, S::Canceled),
        (S::Skipped, E::Reset, S::Created),
        (S::Running, E::Requeue, S::Pending),
    ];

    #[test]
    fn every_status_event_pair_matches_the_table() {
        let mut checked = 0;
        for from in BuildStatus::ALL {
            for event in BuildEvent::ALL {
                let expected = ALLOWED
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                match (from.apply(event), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{from} + {event:?}"),
                    (Err(err), None) => assert_eq!(err, TransitionError { from, event }),
                    (got, want) => panic!("{from} + {event:?}: got {got:?}, want {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 80);
    }

    #[test]
    fn finished_statuses_accept_no_event() {
        for from in [S::Success, S::Failed, S::Canceled] {
            for event in BuildEvent::ALL {
                assert!(from.apply(event).is_err(), "{from} + {event:?}");
            }
        }
    }

    #[test]
    fn complete_means_success_failed_or_canceled() {
        let complete: Vec<_> = S::ALL.into_iter().filter(|s| s.is_complete()).collect();
        assert_eq!(complete, vec![S::Success, S::Failed, S::Canceled]);
    }

    #[test]
    fn names_round_trip() {
        for status in S::ALL {
            assert_eq!(status.as_str().parse::<BuildStatus>(), Ok(status));
        }
        assert!("cancelled".parse::<BuildStatus>().is_err());
    }
}
