//! Who may use the web GUI and API: the admin password, login sessions,
//! CSRF tokens, the login rate limit and API tokens for scripts.
//!
//! * **Admin password**: one account. Its Argon2id hash (PHC string) lives in
//!   `config.yaml` as `admin_password_hash`, written by `/setup`, by the
//!   password page or by `streampulse passwd`; there is no default password.
//!   Hashing and verifying live in [`crate::credentials`] (also used by
//!   `streampulse passwd` and the boot-partition import).
//! * **Sessions**: random 256-bit tokens in an `HttpOnly; SameSite=Strict`
//!   cookie, kept in memory (a restart logs everyone out), keyed by their
//!   SHA-256 so lookups leak nothing about live tokens. Each use renews the
//!   idle lifetime (`web.session_hours`). A session is bound to the password
//!   hash it was made under: changing the password ends all sessions.
//! * **CSRF**: every session has its own random token, required in every
//!   form (`csrf` field) and state-changing request. Forms without a session
//!   (login, setup) use a double-submit cookie ([`PRE_COOKIE`]).
//! * **Rate limit**: [`LoginLimiter`] counts failed logins per client address
//!   and overall, within a sliding window, and refuses attempts beyond that.
//! * **API tokens**: for scripts (`Authorization: Bearer sp_…`), made on the
//!   Access page and shown once; `api-tokens.json` in the data directory
//!   keeps only their SHA-256 (a token is 256 random bits, so a fast hash is
//!   enough) and their [`Scope`], chosen at creation: what a leaked token
//!   opens is what it was made for.
//!
//! Times come from the injected [`crate::clock::Clock`], so expiry and the
//! rate limit are tested without sleeping. A clock that jumps forward (NTP
//! after a boot in 1970) at worst expires sessions early.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use anyhow::{Context, Result};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::SharedClock;
use crate::credentials::TOKENS_FILE;

/// Cookie holding the session token.
pub const SESSION_COOKIE: &str = "sp_session";
/// Cookie holding the pre-session CSRF token of the login and setup forms.
pub const PRE_COOKIE: &str = "sp_pre";
/// Sessions kept at most; the one closest to expiry goes first.
const MAX_SESSIONS: usize = 64;
/// Failed logins from one address allowed within [`FAIL_WINDOW_MS`].
pub const MAX_FAILS_PER_ADDR: usize = 5;
/// Failed logins from everywhere allowed within [`FAIL_WINDOW_MS`].
pub const MAX_FAILS_TOTAL: usize = 30;
/// The rate limit's sliding window (15 minutes).
pub const FAIL_WINDOW_MS: i64 = 15 * 60_000;
/// Addresses tracked by the limiter at most (oldest forgotten first).
const MAX_TRACKED_ADDRS: usize = 1024;
/// API tokens kept at most.
pub const MAX_API_TOKENS: usize = 32;
/// 32 random bytes as unpadded base64url (43 characters).
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source should be available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One login.
#[derive(Clone, Debug)]
pub struct Session {
    /// The CSRF token forms of this session must carry.
    pub csrf: String,
    /// Idle expiry, ms since the epoch (renewed on use).
    expires_ms: i64,
    /// SHA-256 of the admin hash the session was made under.
    hash_fp: [u8; 32],
}

/// The live sessions; see the module docs.
pub struct Sessions {
    /// Keyed by SHA-256 of the cookie value. Held briefly, never across I/O.
    map: Mutex<HashMap<[u8; 32], Session>>,
    clock: SharedClock,
}

impl Sessions {
    pub fn new(clock: SharedClock) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Starts a session under `admin_hash`; returns (cookie token, session).
    pub fn create(&self, lifetime_ms: i64, admin_hash: &str) -> (String, Session) {
        let token = random_token();
        let now = self.clock.now_ms();
        let s = Session {
            csrf: random_token(),
            expires_ms: now.saturating_add(lifetime_ms),
            hash_fp: sha256(admin_hash.as_bytes()),
        };
        let mut map = self.map.lock().expect("sessions lock");
        map.retain(|_, v| v.expires_ms > now);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, v)| v.expires_ms)
                .map(|(k, _)| *k)
                .expect("map is not empty");
            map.remove(&oldest);
        }
        map.insert(sha256(token.as_bytes()), s.clone());
        (token, s)
    }

    /// The live session for `token` under `admin_hash`, renewed for
    /// `lifetime_ms`; None if unknown, expired or made under another password.
    pub fn get(&self, token: &str, lifetime_ms: i64, admin_hash: &str) -> Option<Session> {
        let key = sha256(token.as_bytes());
        let now = self.clock.now_ms();
        let mut map = self.map.lock().expect("sessions lock");
        let s = map.get_mut(&key)?;
        if s.expires_ms <= now || !ct_eq(&s.hash_fp, &sha256(admin_hash.as_bytes())) {
            map.remove(&key);
            return None;
        }
        s.expires_ms = now.saturating_add(lifetime_ms);
        Some(s.clone())
    }

    /// Ends the session of `token` (logout).
    pub fn remove(&self, token: &str) {
        self.map
            .lock()
            .expect("sessions lock")
            .remove(&sha256(token.as_bytes()));
    }

    /// Ends every session (password changed).
    pub fn clear(&self) {
        self.map.lock().expect("sessions lock").clear();
    }

    /// Sessions currently held (for tests and `/healthz`-like views).
    pub fn len(&self) -> usize {
        self.map.lock().expect("sessions lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Failed-login bookkeeping; see the module docs.
pub struct LoginLimiter {
    inner: Mutex<LimiterInner>,
    clock: SharedClock,
}

#[derive(Default)]
struct LimiterInner {
    per_addr: HashMap<IpAddr, VecDeque<i64>>,
    total: VecDeque<i64>,
}

fn prune(q: &mut VecDeque<i64>, now: i64) {
    // A clock that went backwards forgets everything rather than locking out.
    while q
        .front()
        .is_some_and(|&t| t <= now - FAIL_WINDOW_MS || t > now)
    {
        q.pop_front();
    }
}

impl LoginLimiter {
    pub fn new(clock: SharedClock) -> Self {
        LoginLimiter {
            inner: Mutex::new(LimiterInner::default()),
            clock,
        }
    }

    /// Ok if `addr` may try a password now; otherwise the seconds to wait.
    pub fn check(&self, addr: IpAddr) -> Result<(), u64> {
        let now = self.clock.now_ms();
        let mut i = self.inner.lock().expect("limiter lock");
        prune(&mut i.total, now);
        let wait = |q: &VecDeque<i64>| {
            q.front()
                .map(|&t| ((t + FAIL_WINDOW_MS - now).max(1000) / 1000) as u64)
                .unwrap_or(1)
        };
        if i.total.len() >= MAX_FAILS_TOTAL {
            return Err(wait(&i.total));
        }
        if let Some(q) = i.per_addr.get_mut(&addr) {
            prune(q, now);
            if q.len() >= MAX_FAILS_PER_ADDR {
                return Err(wait(q));
            }
        }
        Ok(())
    }

    /// Records a failed attempt from `addr`.
    pub fn failed(&self, addr: IpAddr) {
        let now = self.clock.now_ms();
        let mut i = self.inner.lock().expect("limiter lock");
        i.total.push_back(now);
        if !i.per_addr.contains_key(&addr) && i.per_addr.len() >= MAX_TRACKED_ADDRS {
            let stalest = i
                .per_addr
                .iter()
                .min_by_key(|(_, q)| q.back().copied().unwrap_or(i64::MIN))
                .map(|(a, _)| *a);
            if let Some(a) = stalest {
                i.per_addr.remove(&a);
            }
        }
        i.per_addr.entry(addr).or_default().push_back(now);
    }

    /// Forgets `addr`'s failures after a successful login.
    pub fn succeeded(&self, addr: IpAddr) {
        self.inner
            .lock()
            .expect("limiter lock")
            .per_addr
            .remove(&addr);
    }
}

/// What an API token opens, chosen when it is made. Checked per route by
/// the handler ([`crate::web::routes::Access`]).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Status, streams, history and metrics (the JSON API and `/metrics`).
    /// Tokens made before scopes existed have this one.
    #[default]
    Read,
    /// The live view: live streams, thumbnails and `/api/live`.
    Live,
    /// Everything `read` and `live` open, and the write API
    /// ([`super::write_api`]), backups and updates.
    Admin,
}

impl Scope {
    /// Every scope, in the order the Access page offers them.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Live, Scope::Admin];

    /// The name stored and shown (`read`, `live`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Live => "live",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `name`, as the Access page's form sends it.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// What the scope opens, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Scope::Read => "status, streams, history, metrics",
            Scope::Live => "live video and thumbnails",
            Scope::Admin => {
                "everything: read, live, changing streams and settings, backups, updates"
            }
        }
    }

    /// True if a token of this scope may use a route that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self == needed || self == Scope::Admin
    }
}

/// One API token as stored (its digest, never the token).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenEntry {
    /// Short public id (first 12 hex digits of the digest), for revoking.
    pub id: String,
    /// What the token is for ("Home Assistant").
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    pub created_ms: i64,
    /// What the token opens; absent in files written before scopes: `read`.
    #[serde(default)]
    pub scope: Scope,
}

/// API tokens, loaded from and saved to `api-tokens.json` in the data dir.
pub struct ApiTokens {
    path: PathBuf,
    list: RwLock<Vec<TokenEntry>>,
}

/// Prefix of every API token (so a leaked one is recognisable in a scan).
pub const TOKEN_PREFIX: &str = "sp_";

impl ApiTokens {
    /// Loads the tokens of `data_dir` (none if the file is absent; a corrupt
    /// file is logged and treated as empty, so no token works until fixed).
    pub fn load(data_dir: &Path) -> Self {
        let path = data_dir.join(TOKENS_FILE);
        let list = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::error!("{} is not valid ({e}); no API token works", path.display());
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        ApiTokens {
            path,
            list: RwLock::new(list),
        }
    }

    /// The tokens' public entries.
    pub fn list(&self) -> Vec<TokenEntry> {
        self.list.read().expect("tokens lock").clone()
    }

    /// The entry of `token`, if it is a valid one.
    pub fn verify(&self, token: &str) -> Option<TokenEntry> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 100 {
            return None;
        }
        let digest = hex(&sha256(token.as_bytes()));
        let list = self.list.read().expect("tokens lock");
        let mut found = None;
        for t in list.iter() {
            if ct_eq(t.sha256.as_bytes(), digest.as_bytes()) {
                found = Some(t.clone());
            }
        }
        found
    }

    /// Makes a token named `name` with `scope`, saves its digest, returns
    /// the token (the only time it is ever seen).
    ///
    /// # Errors
    /// Too many tokens, or the file cannot be written.
    pub fn create(&self, name: &str, scope: Scope, now_ms: i64) -> Result<String> {
        let token = format!("{TOKEN_PREFIX}{}", random_token());
        let digest = hex(&sha256(token.as_bytes()));
        let mut list = self.list.write().expect("tokens lock");
        if list.len() >= MAX_API_TOKENS {
            anyhow::bail!("at most {MAX_API_TOKENS} tokens; revoke one first");
        }
        let mut next = list.clone();
        next.push(TokenEntry {
            id: digest[..12].to_owned(),
            name: name.to_owned(),
            sha256: digest,
            created_ms: now_ms,
            scope,
        });
        self.save(&next)?;
        *list = next;
        Ok(token)
    }

    /// Revokes the token with public id `id`; false if there is none.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn revoke(&self, id: &str) -> Result<bool> {
        let mut list = self.list.write().expect("tokens lock");
        let next: Vec<TokenEntry> = list.iter().filter(|t| t.id != id).cloned().collect();
        if next.len() == list.len() {
            return Ok(false);
        }
        self.save(&next)?;
        *list = next;
        Ok(true)
    }

    fn save(&self, list: &[TokenEntry]) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_vec_pretty(list).expect("token entries serialize");
        crate::atomic_file::write_atomic(&self.path, &json, None)
    }
}

/// Adds a token to the store of `data_dir` directly (tests and provisioning
/// scripts seed one this way before the daemon starts).
///
/// # Errors
/// When the file cannot be written.
pub fn seed_token(data_dir: &Path, name: &str, token: &str, scope: Scope) -> Result<()> {
    anyhow::ensure!(
        token.starts_with(TOKEN_PREFIX) && token.len() >= TOKEN_PREFIX.len() + 32,
        "a token starts with {TOKEN_PREFIX} and has at least 32 more characters"
    );
    let store = ApiTokens::load(data_dir);
    let digest = hex(&sha256(token.as_bytes()));
    let mut list = store.list();
    list.retain(|t| t.sha256 != digest);
    list.push(TokenEntry {
        id: digest[..12].to_owned(),
        name: name.to_owned(),
        sha256: digest,
        created_ms: 0,
        scope,
    });
    store.save(&list)
}

/// The value of cookie `name` in a `Cookie:` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v.trim_matches('"'))
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, whole site. `max_age_s`
/// 0 deletes the cookie. (No `Secure`: the box is reached over plain http.)
pub fn set_cookie(name: &str, value: &str, max_age_s: i64) -> String {
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimulatedClock;
    use std::sync::Arc;

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn sessions_expire_renew_and_follow_the_password() {
        let clock = Arc::new(SimulatedClock::new(T0));
        let s = Sessions::new(clock.clone());
        let (tok, sess) = s.create(60_000, "$h1");
        assert_eq!(tok.len(), 43);
        assert_ne!(tok, sess.csrf);
        clock.advance(59_000);
        assert!(s.get(&tok, 60_000, "$h1").is_some(), "renewed on use");
        clock.advance(59_000);
        assert!(
            s.get(&tok, 60_000, "$h1").is_some(),
            "still alive: renewed above"
        );
        clock.advance(60_001);
        assert!(s.get(&tok, 60_000, "$h1").is_none(), "idle too long");
        let (tok2, _) = s.create(60_000, "$h1");
        assert!(s.get(&tok2, 60_000, "$h2").is_none(), "password changed");
        assert!(
            s.get(&tok2, 60_000, "$h1").is_none(),
            "and it is gone for good"
        );
        let (tok3, _) = s.create(60_000, "$h1");
        s.remove(&tok3);
        assert!(s.get(&tok3, 60_000, "$h1").is_none());
        assert!(s.get("forged", 60_000, "$h1").is_none());
        for _ in 0..(MAX_SESSIONS + 10) {
            s.create(60_000, "$h1");
        }
        assert!(s.len() <= MAX_SESSIONS);
    }

    #[test]
    fn limiter_locks_out_and_forgives() {
        let clock = Arc::new(SimulatedClock::new(T0));
        let l = LoginLimiter::new(clock.clone());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..MAX_FAILS_PER_ADDR {
            assert!(l.check(a).is_ok());
            l.failed(a);
            clock.advance(1000);
        }
        let wait = l.check(a).unwrap_err();
        assert!(wait > 800 && wait <= 900, "{wait}");
        assert!(l.check(b).is_ok(), "another address is not locked out");
        clock.advance(FAIL_WINDOW_MS - 4000);
        assert!(l.check(a).is_ok(), "the oldest failure left the window");
        l.succeeded(a);
        assert!(l.check(a).is_ok());
        // Many addresses together hit the global cap.
        for i in 0..MAX_FAILS_TOTAL {
            l.failed(IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]));
        }
        assert!(l.check("192.0.2.99".parse().unwrap()).is_err());
    }

    #[test]
    fn api_tokens_are_stored_as_digests() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApiTokens::load(dir.path());
        let tok = store.create("ha", Scope::Live, T0).unwrap();
        assert!(tok.starts_with(TOKEN_PREFIX));
        let name_scope = |e: Option<TokenEntry>| e.map(|e| (e.name, e.scope));
        assert_eq!(
            name_scope(store.verify(&tok)),
            Some(("ha".into(), Scope::Live))
        );
        assert_eq!(store.verify(&format!("{tok}x")), None);
        let file = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!file.contains(&tok), "the token itself is never stored");
        assert!(file.contains("\"scope\": \"live\""), "{file}");
        let again = ApiTokens::load(dir.path());
        assert_eq!(
            name_scope(again.verify(&tok)),
            Some(("ha".into(), Scope::Live))
        );
        let id = again.list()[0].id.clone();
        assert!(again.revoke(&id).unwrap());
        assert!(!again.revoke(&id).unwrap());
        assert_eq!(again.verify(&tok), None);
        seed_token(
            dir.path(),
            "tests",
            "sp_0123456789abcdef0123456789abcdef",
            Scope::Admin,
        )
        .unwrap();
        assert!(ApiTokens::load(dir.path())
            .verify("sp_0123456789abcdef0123456789abcdef")
            .is_some());
    }

    #[test]
    fn scopes() {
        use Scope::*;
        // (token scope, needed) → allowed
        for (have, need, ok) in [
            (Read, Read, true),
            (Read, Live, false),
            (Live, Live, true),
            (Live, Read, false),
            (Admin, Read, true),
            (Admin, Live, true),
            (Read, Admin, false),
            (Live, Admin, false),
        ] {
            assert_eq!(have.allows(need), ok, "{have:?} for {need:?}");
        }
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("root"), None);
        // A file written before scopes: every token reads, nothing more.
        let dir = tempfile::tempdir().unwrap();
        let tok = "sp_0123456789abcdef0123456789abcdef";
        let digest = hex(&sha256(tok.as_bytes()));
        let old = format!(
            "[{{\"id\": \"{}\", \"name\": \"old\", \"sha256\": \"{digest}\", \"created_ms\": 1}}]",
            &digest[..12]
        );
        std::fs::write(dir.path().join(TOKENS_FILE), old).unwrap();
        let e = ApiTokens::load(dir.path()).verify(tok).unwrap();
        assert_eq!((e.name.as_str(), e.scope), ("old", Read));
    }

    #[test]
    fn cookies() {
        let h = "a=1; sp_session=abc; sp_pre=\"x\"";
        assert_eq!(cookie(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(h, PRE_COOKIE), Some("x"));
        assert_eq!(cookie(h, "nope"), None);
        let c = set_cookie(SESSION_COOKIE, "v", 60);
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }
}
