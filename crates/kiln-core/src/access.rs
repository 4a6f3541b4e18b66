//! Who may do what to a project's builds: GitLab's access levels and visibility.

use std::str::FromStr;

/// GitLab's member access levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccessLevel {
    Guest = 10,
    Reporter = 20,
    Developer = 30,
    Master = 40,
    Owner = 50,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 5] = [
        AccessLevel::Guest,
        AccessLevel::Reporter,
        AccessLevel::Developer,
        AccessLevel::Master,
        AccessLevel::Owner,
    ];

    pub fn value(self) -> i64 {
        self as i64
    }

    pub fn from_value(value: i64) -> Option<AccessLevel> {
        AccessLevel::ALL.into_iter().find(|l| l.value() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Guest => "guest",
            AccessLevel::Reporter => "reporter",
            AccessLevel::Developer => "developer",
            AccessLevel::Master => "master",
            AccessLevel::Owner => "owner",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown access level {0:?} (guest, reporter, developer, master, owner)")]
pub struct UnknownAccessLevel(String);

impl FromStr for AccessLevel {
    type Err = UnknownAccessLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // GitLab renamed master to maintainer; accept both.
        let s = if s == "maintainer" { "master" } else { s };
        AccessLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownAccessLevel(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Private,
    Internal,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Internal => "internal",
            Visibility::Public => "public",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown visibility {0:?} (private, internal, public)")]
pub struct UnknownVisibility(String);

impl FromStr for Visibility {
    type Err = UnknownVisibility;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "private" => Ok(Visibility::Private),
            "internal" => Ok(Visibility::Internal),
            "public" => Ok(Visibility::Public),
            other => Err(UnknownVisibility(other.to_owned())),
        }
    }
}

/// What a caller wants to do with a project's builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See that the project exists at all (otherwise: 404 Project Not Found).
    ReadProject,
    /// List and show builds, read traces and artifacts (GitLab's `read_build`).
    ReadBuild,
    /// Cancel, retry, play, erase (GitLab's `update_build`).
    UpdateBuild,
    /// Delete a job's artifacts, delete pipelines, manage members, variables and triggers
    /// (GitLab's maintainer-level abilities).
    Maintain,
    /// Delete the project's pipelines (GitLab's `destroy_pipeline`: owners).
    Own,
}

/// The caller as far as permissions go: admin flag and membership in the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub is_admin: bool,
    pub access: Option<AccessLevel>,
}

impl Caller {
    /// Whether a signed-in caller holds `permission` on a project of `visibility`.
    pub fn can(self, permission: Permission, visibility: Visibility) -> bool {
        if self.is_admin {
            return true;
        }
        let level = self.access;
        match permission {
            Permission::ReadProject => visibility != Visibility::Private || level.is_some(),
            // Internal and public projects show their builds to every signed-in user
            // (GitLab's default `public_builds: true`); private ones need reporter.
            Permission::ReadBuild => {
                visibility != Visibility::Private || level >= Some(AccessLevel::Reporter)
            }
            Permission::UpdateBuild => level >= Some(AccessLevel::Developer),
            Permission::Maintain => level >= Some(AccessLevel::Master),
            Permission::Own => level >= Some(AccessLevel::Owner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessLevel as L;
    use Permission as P;
    use Visibility as V;

    fn member(level: Option<AccessLevel>) -> Caller {
        Caller {
            is_admin: false,
            access: level,
        }
    }

    #[test]
    fn private_project_permissions_by_role() {
        // (role, read project, read build, update build)
        let table = [
            (None, false, false, false),
            (Some(L::Guest), true, false, false),
            (Some(L::Reporter), true, true, false),
            (Some(L::Developer), true, true, true),
            (Some(L::Master), true, true, true),
            (Some(L::Owner), true, true, true),
        ];
        for (level, project, read, update) in table {
            let caller = member(level);
            assert_eq!(caller.can(P::ReadProject, V::Private), project, "{level:?}");
            assert_eq!(caller.can(P::ReadBuild, V::Private), read, "{level:?}");
            assert_eq!(caller.can(P::UpdateBuild, V::Private), update, "{level:?}");
        }
    }

    #[test]
    fn public_and_internal_builds_are_readable_by_anyone_signed_in() {
        for visibility in [V::Public, V::Internal] {
            assert!(member(None).can(P::ReadBuild, visibility));
            assert!(!member(None).can(P::UpdateBuild, visibility));
            assert!(!member(Some(L::Reporter)).can(P::UpdateBuild, visibility));
        }
    }

    #[test]
    fn admins_may_do_everything() {
        let admin = Caller {
            is_admin: true,
            access: None,
        };
        for p in [P::ReadProject, P::ReadBuild, P::UpdateBuild] {
            assert!(admin.can(p, V::Private));
        }
    }

    #[test]
    fn levels_parse_and_round_trip() {
        for level in L::ALL {
            assert_eq!(level.as_str().parse::<AccessLevel>(), Ok(level));
            assert_eq!(AccessLevel::from_value(level.value()), Some(level));
        }
        assert_eq!("maintainer".parse::<AccessLevel>(), Ok(L::Master));
        assert!("boss".parse::<AccessLevel>().is_err());
    }
}
