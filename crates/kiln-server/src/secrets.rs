//! Encryption of secrets at rest (CI/CD variable values): AES-256-GCM under a key every
//! server of a cluster shares. The key comes from `--secret-key-file` or `KILN_SECRET_KEY`;
//! without either, a key is made on first start in the data dir (`secret.key`, mode 0600).
//! Any text is a key: its SHA-256 is the AES key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};
use std::path::Path;

const NONCE_BYTES: usize = 12;
const KEY_FILE: &str = "secret.key";

pub struct Cipher(Aes256Gcm);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("the secret key is empty")]
    EmptyKey,
    /// Made with another key, or damaged.
    #[error("a stored secret does not decrypt with this server's key")]
    Undecryptable,
}

impl Cipher {
    pub fn from_key_text(text: &str) -> Result<Cipher, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::EmptyKey);
        }
        let key = Sha256::digest(text.as_bytes());
        Ok(Cipher(Aes256Gcm::new(&key)))
    }

    /// The key `given` (the text of a key), or the data dir's, made now if it has none.
    pub fn load(given: Option<&str>, data_dir: &Path) -> Result<Cipher, SecretError> {
        if let Some(text) = given {
            return Cipher::from_key_text(text);
        }
        let path = data_dir.join(KEY_FILE);
        let io = |e| SecretError::KeyFile(path.display().to_string(), e);
        match std::fs::read_to_string(&path) {
            Ok(text) => Cipher::from_key_text(&text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let text = hex::encode(rand_bytes::<32>());
                write_private(&path, &text).map_err(io)?;
                Cipher::from_key_text(&text)
            }
            Err(err) => Err(io(err)),
        }
    }

    /// Nonce, then ciphertext and tag.
    pub fn encrypt(&self, plain: &str) -> Vec<u8> {
        let nonce = rand_bytes::<NONCE_BYTES>();
        let mut out = nonce.to_vec();
        // Encryption with a valid key and nonce cannot fail.
        out.extend(
            self.0
                .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
                .unwrap_or_default(),
        );
        out
    }

    pub fn decrypt(&self, sealed: &[u8]) -> Result<String, SecretError> {
        if sealed.len() < NONCE_BYTES {
            return Err(SecretError::Undecryptable);
        }
        let (nonce, data) = sealed.split_at(NONCE_BYTES);
        let plain = self
            .0
            .decrypt(Nonce::from_slice(nonce), data)
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| SecretError::Undecryptable)
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = [0_u8; N];
    aes_gcm::aead::OsRng.fill_bytes(&mut bytes);
    bytes
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_other_keys_cannot_read_them() {
        let cipher = Cipher::from_key_text("one key").unwrap();
        let sealed = cipher.encrypt("s3cret value");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(cipher.decrypt(&sealed).unwrap(), "s3cret value");
        let other = Cipher::from_key_text("another key").unwrap();
        assert!(other.decrypt(&sealed).is_err());
        assert_ne!(
            cipher.encrypt("same"),
            cipher.encrypt("same"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn a_key_is_made_once_in_the_data_dir_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = Cipher::load(None, dir.path()).unwrap();
        let sealed = first.encrypt("v");
        let again = Cipher::load(None, dir.path()).unwrap();
        assert_eq!(again.decrypt(&sealed).unwrap(), "v");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
