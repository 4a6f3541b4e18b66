//! The `scope` filter of the builds lists. GitLab (Grape) accepts it as a string
//! (`scope=failed`), an array (`scope[]=failed&scope[]=success`) or a hash
//! (`scope[0]=failed`); any value outside the statuses is refused as a whole.

use crate::status::BuildStatus;

/// The statuses a list is limited to; empty means every build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    statuses: Vec<BuildStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Scope contains invalid value(s)")]
pub struct ScopeError;

impl Scope {
    pub fn all() -> Scope {
        Scope::default()
    }

    pub fn of(statuses: &[BuildStatus]) -> Scope {
        let mut statuses = statuses.to_vec();
        statuses.sort();
        statuses.dedup();
        Scope { statuses }
    }

    /// Reads every scope spelling out of decoded query pairs; other keys are ignored.
    pub fn from_query_pairs<'a, I>(pairs: I) -> Result<Scope, ScopeError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut statuses = Vec::new();
        for (key, value) in pairs {
            if !is_scope_key(key) {
                continue;
            }
            // GitLab treats an empty scope as "no filter".
            if value.is_empty() {
                continue;
            }
            statuses.push(value.parse::<BuildStatus>().map_err(|_| ScopeError)?);
        }
        Ok(Scope::of(&statuses))
    }

    /// The selected statuses, sorted; empty when every build is wanted.
    pub fn statuses(&self) -> &[BuildStatus] {
        &self.statuses
    }

    pub fn is_all(&self) -> bool {
        self.statuses.is_empty()
    }

    pub fn includes(&self, status: BuildStatus) -> bool {
        self.is_all() || self.statuses.contains(&status)
    }
}

/// `scope`, `scope[]` and `scope[<anything>]` (the hash form's keys are ignored, as in Rails).
fn is_scope_key(key: &str) -> bool {
    key == "scope" || (key.starts_with("scope[") && key.ends_with(']'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildStatus as S;

    fn parse(pairs: &[(&str, &str)]) -> Result<Scope, ScopeError> {
        Scope::from_query_pairs(pairs.iter().copied())
    }

    #[test]
    fn string_form() {
        assert_eq!(parse(&[("scope", "failed")]), Ok(Scope::of(&[S::Failed])));
    }

    #[test]
    fn array_form() {
        let got = parse(&[("scope[]", "failed"), ("scope[]", "success")]);
        assert_eq!(got, Ok(Scope::of(&[S::Success, S::Failed])));
    }

    #[test]
    fn hash_form() {
        let got = parse(&[("scope[0]", "manual"), ("scope[1]", "skipped")]);
        assert_eq!(got, Ok(Scope::of(&[S::Skipped, S::Manual])));
    }

    #[test]
    fn every_status_is_a_valid_scope() {
        for status in S::ALL {
            assert_eq!(
                parse(&[("scope", status.as_str())]),
                Ok(Scope::of(&[status]))
            );
        }
    }

    #[test]
    fn missing_or_empty_scope_means_all() {
        assert!(parse(&[("page", "2")]).unwrap().is_all());
        assert!(parse(&[("scope", "")]).unwrap().is_all());
    }

    #[test]
    fn an_unknown_value_anywhere_is_an_error() {
        assert_eq!(parse(&[("scope", "bogus")]), Err(ScopeError));
        assert_eq!(
            parse(&[("scope[]", "failed"), ("scope[]", "nope")]),
            Err(ScopeError)
        );
        assert_eq!(parse(&[("scope[x]", "FAILED")]), Err(ScopeError));
    }

    #[test]
    fn other_keys_that_look_alike_are_ignored() {
        assert!(parse(&[("scopes", "bogus"), ("xscope", "bogus")])
            .unwrap()
            .is_all());
    }
}
