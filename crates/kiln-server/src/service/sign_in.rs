//! Signing in with a username and a password (its Argon2id hash is kept) or a personal
//! access token, slowed after failures: past `FREE_FAILURES` in a row, an account or an
//! address must wait 2^(n - FREE_FAILURES) seconds (at most `MAX_WAIT_SECS`) after its last
//! failure before the next attempt is even checked. The counts live in the store, so every
//! server slows the same attacker; a good sign-in clears them.

use crate::AppInner;
use kiln_store::StoreError;
use std::net::IpAddr;

const FREE_FAILURES: i64 = 5;
const MAX_WAIT_SECS: i64 = 300;
/// GitLab's default session length: a week.
pub const SESSION_TTL_SECS: i64 = 7 * 24 * 3600;
/// GitLab's minimum password length.
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// GitLab's words for a wrong login or password, whichever it was.
    #[error("Invalid login or password.")]
    Invalid,
    #[error("Too many failed sign-ins: try again in {0} seconds.")]
    Throttled(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// The Argon2id hash (PHC string) of `password`; slow on purpose, so off the runtime.
pub async fn hash_password(password: &str) -> Result<String, SignInError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(SignInError::Hashing(format!(
            "Password is too short (minimum is {MIN_PASSWORD_CHARS} characters)"
        )));
    }
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| SignInError::Hashing(e.to_string()))
    })
    .await
    .map_err(|e| SignInError::Hashing(e.to_string()))?
}

/// Whether `password` matches the PHC `hash` (off the runtime).
/// A made-up hash for a user who has none, so that an unknown user costs as much as a known one.
const NOBODY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8fQvS1NeOE3xRVLGsBOe0xPWsbs3mfiO1FkMJ5sxcPg";

async fn verify(password: &str, hash: Option<String>) -> bool {
    let (password, hash) = (password.to_owned(), hash);
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let known = hash.is_some();
        let text = hash.unwrap_or_else(|| NOBODY.to_owned());
        let Ok(parsed) = PasswordHash::new(&text) else {
            return false;
        };
        let matches = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        known && matches
    })
    .await
    .unwrap_or(false)
}

/// Signs `login` in with `password` (or one of their personal access tokens); returns the
/// new session's cookie value.
pub async fn sign_in(
    app: &AppInner,
    login: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<String, SignInError> {
    let sessions = app.store.sessions();
    let account = format!("user:{}", login.to_lowercase());
    let from = address.map(|a| format!("address:{a}"));
    let subjects: Vec<&str> = std::iter::once(account.as_str())
        .chain(from.as_deref())
        .collect();
    let now = kiln_store::now_ms();
    for subject in &subjects {
        let failures = sessions.failures(subject).await?;
        if failures.count >= FREE_FAILURES {
            let wait = (1_i64 << (failures.count - FREE_FAILURES).min(16)).min(MAX_WAIT_SECS);
            let waited = (now - failures.last_at) / 1000;
            if waited < wait {
                return Err(SignInError::Throttled(wait - waited));
            }
        }
    }
    let found = sessions.password_of(login).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    let mut good = verify(password, hash).await;
    if !good {
        if let Some(user) = &user {
            // A personal access token of theirs signs them in too.
            good = app
                .store
                .users()
                .by_token(password)
                .await?
                .is_some_and(|owner| owner.id == user.id);
        }
    }
    match (good, user) {
        (true, Some(user)) => {
            sessions.clear_failures(&subjects).await?;
            let ttl = SESSION_TTL_SECS * 1000;
            Ok(sessions.start(user.id, ttl).await?)
        }
        _ => {
            sessions.record_failure(&subjects).await?;
            Err(SignInError::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stand_in_hash_is_a_real_one() {
        // Were it not, an unknown user would be answered at once, and so told apart.
        let parsed = argon2::password_hash::PasswordHash::new(super::NOBODY).expect("parses");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
    }
}
