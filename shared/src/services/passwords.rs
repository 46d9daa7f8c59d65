//! Password hashing (Argon2id, OWASP's parameters) and the random secrets of sessions,
//! personal tokens and setup links, with the fast hash those high-entropy secrets are kept by.
//!
//! Passwords: Argon2id v1.3, m = 19 MiB (19,456 KiB), t = 2, p = 1, 16-byte random salt,
//! 32-byte output, stored as a PHC string. Hashing and verifying run on the blocking pool.
//! A sign-in for an unknown e-mail verifies against a dummy hash with the same parameters,
//! so it costs the same time as a wrong password. Session secrets, personal tokens and setup
//! tokens are 256 random bits: no dictionary can reach them, so SHA-256 (one fast hash per
//! request) is as safe to store as a slow hash would be, and lookups stay cheap.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use rand::RngCore;

use super::{ServiceError, ServiceResult};

/// Argon2id memory cost in KiB (19 MiB).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2id lanes.
pub const ARGON2_PARALLELISM: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_PARALLELISM, Some(32))
        .expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes)?;
    Ok(argon2().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// The hash unknown accounts are checked against: of a random password nobody knows.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_now(&random_secret()).expect("hashing works"))
}

/// Make the dummy hash now (hosts call this at start so the first sign-in is not slower).
pub async fn prepare() {
    let _ = tokio::task::spawn_blocking(dummy_hash).await;
}

/// The PHC string of `password` with a fresh salt.
pub async fn hash(password: String) -> ServiceResult<String> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| ServiceError::Core(crate::ports::StoreError::Invalid(format!("hashing stopped: {e}")).into()))?
        .map_err(|e| ServiceError::Core(crate::ports::StoreError::Invalid(format!("hashing failed: {e}")).into()))
}

/// Whether `password` matches `stored` (a PHC string), compared in constant time by the
/// argon2 crate. With `None` (no such account, or no password set) the same work is done
/// against the dummy hash and the answer is `false`.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_string());
        let Ok(parsed) = PasswordHash::new(&phc) else {
            tracing::error!("a stored password hash does not parse; that agent cannot sign in");
            return false;
        };
        let ok = argon2().verify_password(password.as_bytes(), &parsed).is_ok();
        ok && known
    })
    .await
    .unwrap_or(false)
}

/// 256 random bits, base64url without padding (43 characters).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of a high-entropy secret, hex: what the store keeps instead of the secret.
pub fn secret_hash(secret: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compare two secrets in constant time (for the CSRF token).
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_names_argon2id_with_owasp_parameters() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery".into(), Some(h.clone())).await);
        assert!(!verify("correct horse batterY".into(), Some(h)).await);
        assert!(!verify("anything".into(), None).await);
        assert!(!verify("anything".into(), Some("not a phc string".into())).await);
    }

    #[test]
    fn secrets_are_random_and_stored_by_hash() {
        let a = random_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_secret());
        assert_eq!(secret_hash("abc").len(), 64);
        assert_ne!(secret_hash(&a), a);
        assert!(same_secret("x1", "x1") && !same_secret("x1", "x2"));
    }
}
