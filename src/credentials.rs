//! What the box keeps to let people in, below the web layer: the admin
//! password's Argon2id hash (made by `/setup`, the password page,
//! `streampulse passwd` and the boot-partition import; checked at login)
//! and the name of the API token file in the data directory (which a
//! factory reset removes).
//!
//! Hashing and verifying run one at a time (a verify takes ~19 MiB and tens
//! of milliseconds; a login flood must not stack them on a Pi), and a hash
//! asking for more than [`MAX_ARGON2_KIB`] of memory is refused.

use std::sync::Mutex;

use anyhow::{Context, Result};

/// Shortest admin password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest admin password accepted (Argon2 hashes anything, but a form
/// field of megabytes is an attack, not a password).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Most memory an Argon2 hash may ask for when verified (256 MiB): a boot
/// `config.yaml` with an absurd `m=` must not take the box down.
pub const MAX_ARGON2_KIB: u32 = 256 * 1024;
/// File of API token digests in the data directory.
pub const TOKENS_FILE: &str = "api-tokens.json";

/// Serialises Argon2 work (see the module docs).
static ARGON2_LOCK: Mutex<()> = Mutex::new(());

/// Checks a new admin password; returns the message to show if it is not
/// acceptable.
pub fn check_new_password(pw: &str, again: &str) -> Result<(), String> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(format!("use at least {MIN_PASSWORD_CHARS} characters"));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(format!("use at most {MAX_PASSWORD_CHARS} characters"));
    }
    if pw != again {
        return Err("the two passwords differ".into());
    }
    Ok(())
}

/// Hashes `pw` with Argon2id (the crate's defaults: 19 MiB, 2 passes) and a
/// random salt; returns the PHC string for `admin_password_hash`.
///
/// # Errors
/// Only if the OS random source or Argon2 fails.
pub fn hash_password(pw: &str) -> Result<String> {
    use argon2::PasswordHasher;
    let _one = ARGON2_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let hash = argon2::Argon2::default()
        .hash_password(pw.as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        .context("hashing the password")?;
    Ok(hash.to_string())
}

/// True if `pw` matches the PHC string `hash`. A malformed hash, or one
/// over the memory cap, never matches (and is logged).
pub fn verify_password(pw: &str, hash: &str) -> bool {
    use argon2::PasswordVerifier;
    let parsed = match argon2::PasswordHash::new(hash) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("admin_password_hash is not a valid PHC string: {e}");
            return false;
        }
    };
    match argon2::Params::try_from(&parsed) {
        Ok(p) if p.m_cost() <= MAX_ARGON2_KIB => {}
        Ok(p) => {
            tracing::error!(
                "admin_password_hash asks for {} KiB of memory (limit {MAX_ARGON2_KIB}); make a new one with `streampulse passwd`",
                p.m_cost()
            );
            return false;
        }
        Err(e) => {
            tracing::error!("admin_password_hash has bad parameters: {e}");
            return false;
        }
    }
    if pw.chars().count() > MAX_PASSWORD_CHARS {
        return false;
    }
    let _one = ARGON2_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    argon2::Argon2::default()
        .verify_password(pw.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
        assert!(!verify_password("x", "not a hash"));
        // Parameters asking for 1 GiB are refused without being tried.
        let greedy = h.replace("m=19456", "m=1048576");
        assert!(!verify_password("correct horse battery", &greedy));
        // The config accepts what we produce.
        let c = crate::config::parse(&format!("admin_password_hash: '{h}'\n"), "c").unwrap();
        assert_eq!(c.admin_password_hash.as_deref(), Some(h.as_str()));
    }

    #[test]
    fn new_password_rules() {
        assert!(check_new_password("short", "short").is_err());
        assert!(check_new_password("long enough!", "long enough?").is_err());
        assert!(check_new_password("long enough!", "long enough!").is_ok());
    }
}
