//! Short-lived TURN credentials in the "TURN REST" scheme that coturn's
//! `use-auth-secret` also speaks: the username is `expiry:user_id` (expiry in
//! Unix seconds), the password is base64(HMAC-SHA1(secret, username)). The
//! server never stores a credential; it recomputes the password from the
//! username, so any credential it did not issue (or issued with another
//! secret) fails the TURN message-integrity check.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hallway_shared::UserId;
use ring::hmac;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The file in the data directory that holds the secret.
pub const SECRET_FILE: &str = "turn-secret";

/// Why a username is not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("not a Hallway TURN username (expected expiry:user_id)")]
    Malformed,
    #[error("expired at {0} (Unix seconds)")]
    Expired(u64),
}

/// Issues and checks credentials with one secret.
#[derive(Clone)]
pub struct Credentials {
    key: hmac::Key,
    ttl: Duration,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// One issued credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub username: String,
    pub password: String,
    pub expires: u64,
}

impl Credentials {
    pub fn new(secret: &[u8], ttl: Duration) -> Credentials {
        Credentials {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A credential for `user`, valid for the TTL from `now`.
    pub fn issue(&self, user: UserId, now: SystemTime) -> Issued {
        let expires = unix_seconds(now).saturating_add(self.ttl.as_secs().max(1));
        let username = format!("{expires}:{user}");
        Issued {
            password: self.password(&username),
            username,
            expires,
        }
    }

    /// The password that goes with `username`.
    pub fn password(&self, username: &str) -> String {
        STANDARD.encode(hmac::sign(&self.key, username.as_bytes()).as_ref())
    }

    /// Whose `username` is and whether it is still valid at `now` (the
    /// password is checked by the TURN server's message integrity).
    pub fn check(username: &str, now: SystemTime) -> Result<UserId, CredentialError> {
        let (expires, user) = username.split_once(':').ok_or(CredentialError::Malformed)?;
        let expires: u64 = expires.parse().map_err(|_| CredentialError::Malformed)?;
        let user: i64 = user.parse().map_err(|_| CredentialError::Malformed)?;
        if expires <= unix_seconds(now) {
            return Err(CredentialError::Expired(expires));
        }
        Ok(UserId(user))
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Reads the server's secret from `data_dir`, creating it (32 random bytes,
/// base64, readable by the owner only) on first start. The text itself is the
/// HMAC key, so the same file can be given to coturn as `static-auth-secret`.
pub fn load_or_create_secret(data_dir: &Path) -> io::Result<Vec<u8>> {
    let path = data_dir.join(SECRET_FILE);
    match std::fs::File::open(&path) {
        Ok(mut f) => {
            let mut text = String::new();
            f.read_to_string(&mut text)?;
            let secret = text.trim();
            if secret.len() < 16 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} holds no usable secret (under 16 characters)",
                        path.display()
                    ),
                ));
            }
            Ok(secret.as_bytes().to_vec())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_secret(&path),
        Err(e) => Err(e),
    }
}

fn create_secret(path: &PathBuf) -> io::Result<Vec<u8>> {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    let text = STANDARD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_credentials_check_and_expire() {
        let creds = Credentials::new(b"0123456789abcdef", Duration::from_secs(60));
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let issued = creds.issue(UserId(42), now);
        assert_eq!(issued.username, "1000060:42");
        assert_eq!(issued.expires, 1_000_060);
        assert_eq!(Credentials::check(&issued.username, now), Ok(UserId(42)));
        let later = now + Duration::from_secs(60);
        assert_eq!(
            Credentials::check(&issued.username, later),
            Err(CredentialError::Expired(1_000_060))
        );
        // Known answer (coturn's scheme): HMAC-SHA1, base64.
        assert_eq!(creds.password(&issued.username), issued.password);
        let other = Credentials::new(b"another-server-secret", Duration::from_secs(60));
        assert_ne!(other.password(&issued.username), issued.password);
        for bad in [
            "",
            "42",
            "x:42",
            "1000060:",
            "1000060:x",
            "-1:42",
            "99999999999999999999:1",
        ] {
            assert_eq!(
                Credentials::check(bad, now),
                Err(CredentialError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_secret_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(dir.path()).unwrap();
        assert_eq!(first.len(), 44);
        assert_eq!(load_or_create_secret(dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(SECRET_FILE), "short").unwrap();
        let err = load_or_create_secret(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no usable secret"), "{err}");
    }
}
