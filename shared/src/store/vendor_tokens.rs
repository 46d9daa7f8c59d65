//! Access tokens of the vendor APIs (Datto, BeyondTrust): [`TokenCache`], the one token
//! cache both vendor clients use — per process, and shared through the store, sealed.
//!
//! Sharing: one record per vendor (pk `vendor-token`, sk the vendor) holds the account's
//! token, its expiry, and a minting lease. A client with no fresh token reads the record;
//! if the token there is fresh it adopts it; if not, it claims the lease with a write
//! conditioned on the version it read, so of any number of concurrent cold starts exactly
//! one mints while the others wait for its token (or keep using the old one while it is
//! still valid). A token that got a 401 is passed back as `rejected`: it is never handed
//! out again, and the first client to report it mints the replacement all of them adopt.
//! If the store cannot be read or written, the client mints for its own process, so a
//! store outage never stops vendor calls.
//!
//! At rest: the token is a credential, so the record holds it sealed with AES-256-GCM
//! under a key derived (HKDF-SHA256) from the account's own secret, which lives in the
//! secret store, not in the table; the additional data binds the seal to the vendor,
//! the account and the expiry. A reader of the table alone gets nothing usable, and a
//! rotated secret makes the old record unreadable, so the next client mints afresh. The
//! record also carries the table's TTL, so a dead token is deleted. Tokens never reach a
//! log: `SecretString` does not print.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hkdf};
use serde::{Deserialize, Serialize};

use super::Store;
use crate::error::Result;
use crate::ports::{Clock, Condition, Record, SecretString, StoreError, WriteOp};

/// Partition of the shared token records (sort key: the vendor).
pub const TOKEN_PK: &str = "vendor-token";
/// How long a claim to mint holds before another client may take it over (a minter that
/// died); longer than any mint with its retries should take.
const LEASE: Duration = Duration::from_secs(60);
/// How long a client waits, in real time, for another one's token before giving up.
const WAIT_LIMIT: Duration = Duration::from_secs(70);
/// First and longest pause between two looks at the record while another client mints.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(500);
/// HKDF salt of the sealing key (a version tag: a new scheme gets a new salt).
const SEAL_SALT: &[u8] = b"deskbridge/vendor-token/v1";

/// Whose token: one account of one vendor.
#[derive(Clone, Copy)]
pub struct TokenOwner<'a> {
    /// The record's sort key: `datto`, `beyondtrust`.
    pub vendor: &'static str,
    /// The API base URL the token is valid for.
    pub base_url: &'a str,
    /// The account: Datto's API key, BeyondTrust's OAuth client id.
    pub account: &'a str,
    /// The account's secret; it keys the seal of the shared copy.
    pub secret: &'a SecretString,
    /// Renew this long before expiry (at most half the token's lifetime).
    pub renew_margin: Duration,
}

impl TokenOwner<'_> {
    /// Identifies the account without naming it (the record does not carry the key or URL).
    fn fingerprint(&self) -> String {
        let text = format!(
            "{}\n{}\n{}",
            self.vendor,
            self.base_url.trim_end_matches('/'),
            self.account
        );
        let d = digest::digest(&digest::SHA256, text.as_bytes());
        d.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A token fresh from the vendor.
pub struct MintedToken {
    pub token: SecretString,
    pub lifetime: Duration,
}

/// Another client held the minting lease for longer than a client waits.
#[derive(Debug, Clone, thiserror::Error)]
#[error("another instance has been getting a {vendor} access token for {waited_secs} s without finishing")]
pub struct TokenWaitTimeout {
    pub vendor: &'static str,
    pub waited_secs: u64,
}

/// When a token of `lifetime` expiring at `expires_at` should be renewed: `margin` early,
/// at most half its lifetime early.
pub fn renew_at(expires_at: DateTime<Utc>, lifetime: Duration, margin: Duration) -> DateTime<Utc> {
    expires_at - chrono::Duration::from_std(margin.min(lifetime / 2)).unwrap_or_default()
}

struct Cached {
    /// Owner fingerprint.
    owner: String,
    token: SecretString,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl Cached {
    /// True when this is `owner`'s token and not the one the vendor refused.
    fn serves(&self, owner: &str, rejected: Option<&SecretString>) -> bool {
        self.owner == owner && rejected.is_none_or(|r| r != &self.token)
    }

    fn fresh(&self, now: DateTime<Utc>, margin: Duration) -> bool {
        let lifetime = (self.expires_at - self.issued_at).to_std().unwrap_or_default();
        now < renew_at(self.expires_at, lifetime, margin)
    }
}

/// The token cache of one vendor client family. Clones share one slot; minting happens
/// under its lock, so the tasks of one process wait for one token. Built with
/// [`TokenCache::shared`], the slot is backed by the store for every process.
#[derive(Clone)]
pub struct TokenCache {
    slot: Arc<tokio::sync::Mutex<Option<Cached>>>,
    clock: Arc<dyn Clock>,
    shared: Option<Store>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// What the record says, as one client reads it.
struct Reading {
    /// The record's version, `None` when there is none.
    version: Option<u64>,
    /// The record's token, when it belongs to this owner, opens with this secret and has
    /// not expired.
    token: Option<Cached>,
    /// Until when another client's claim to mint holds.
    minting_until: Option<DateTime<Utc>>,
    record: Option<TokenRecord>,
}

impl TokenCache {
    /// A cache for this process only.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        TokenCache {
            slot: Arc::new(tokio::sync::Mutex::new(None)),
            clock,
            shared: None,
        }
    }

    /// A cache shared with every process using `store` (its clock dates the tokens).
    pub fn shared(store: Store) -> Self {
        TokenCache {
            slot: Arc::new(tokio::sync::Mutex::new(None)),
            clock: store.clock().clone(),
            shared: Some(store),
        }
    }

    /// Forget this process's token (e.g. after the secret changed; the shared copy is
    /// sealed with the old secret and no longer opens).
    pub async fn clear(&self) {
        *self.slot.lock().await = None;
    }

    /// Forget `vendor`'s token here and in the store, so the next call mints a new one
    /// (after the secret was saved, and before "Test configuration" checks it). Other
    /// processes keep theirs until the vendor refuses it, then adopt the new one.
    pub async fn forget(&self, vendor: &str) {
        let mut slot = self.slot.lock().await;
        *slot = None;
        if let Some(store) = &self.shared {
            let delete = WriteOp::Delete {
                pk: TOKEN_PK.to_string(),
                sk: vendor.to_string(),
                condition: Condition::Always,
            };
            if let Err(e) = store.records().write(vec![delete]).await {
                tracing::warn!(vendor, error = %e, "could not delete the shared token; it stays until it expires");
            }
        }
    }

    /// This process's token and its expiry.
    pub async fn snapshot(&self) -> Option<(SecretString, DateTime<Utc>)> {
        self.slot.lock().await.as_ref().map(|c| (c.token.clone(), c.expires_at))
    }

    /// Adopt a token minted elsewhere for `account` of `vendor` at `base_url`.
    pub async fn seed(
        &self,
        vendor: &'static str,
        base_url: &str,
        account: &str,
        token: SecretString,
        expires_at: DateTime<Utc>,
    ) {
        let unused = SecretString::new("");
        let owner = TokenOwner {
            vendor,
            base_url,
            account,
            secret: &unused,
            renew_margin: Duration::ZERO,
        };
        *self.slot.lock().await = Some(Cached {
            owner: owner.fingerprint(),
            token,
            issued_at: self.clock.now(),
            expires_at,
        });
    }

    /// The expiry of this process's token for `owner`, if it has one.
    pub async fn expires_at(&self, owner: &TokenOwner<'_>) -> Option<DateTime<Utc>> {
        let id = owner.fingerprint();
        self.slot
            .lock()
            .await
            .as_ref()
            .filter(|c| c.owner == id)
            .map(|c| c.expires_at)
    }

    /// A token for `owner` that is fresh and is not `rejected` (one the vendor just
    /// refused): this process's, else the shared one, else one minted by `mint` — by this
    /// client when it wins the claim to mint, otherwise by whoever did.
    pub async fn get<E, F, Fut>(
        &self,
        owner: &TokenOwner<'_>,
        rejected: Option<&SecretString>,
        mint: F,
    ) -> std::result::Result<SecretString, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<MintedToken, E>>,
        E: From<TokenWaitTimeout>,
    {
        let mut slot = self.slot.lock().await;
        let id = owner.fingerprint();
        if let Some(c) = slot.as_ref() {
            if c.serves(&id, rejected) && c.fresh(self.clock.now(), owner.renew_margin) {
                return Ok(c.token.clone());
            }
        }
        let Some(store) = self.shared.as_ref() else {
            return self.mint_here(&mut slot, &id, mint).await;
        };
        let key = SealingKey::derive(owner, &id);
        let started = tokio::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        let claimed = loop {
            let now = self.clock.now();
            let reading = match read(store, owner.vendor, &id, &key, now).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(vendor = owner.vendor, error = %e, "cannot read the shared token; minting for this process only");
                    return self.mint_here(&mut slot, &id, mint).await;
                }
            };
            let shared_token = reading.token.filter(|c| c.serves(&id, rejected));
            if let Some(c) = shared_token.as_ref().filter(|c| c.fresh(now, owner.renew_margin)) {
                let token = c.token.clone();
                *slot = shared_token;
                return Ok(token);
            }
            if reading.minting_until.is_some_and(|until| until > now) {
                // Someone else is minting. A token that is due for renewal but still valid
                // serves meanwhile; without one, wait for theirs.
                if let Some(c) = shared_token {
                    return Ok(c.token);
                }
                let waited = started.elapsed();
                if waited >= WAIT_LIMIT {
                    return Err(TokenWaitTimeout {
                        vendor: owner.vendor,
                        waited_secs: waited.as_secs(),
                    }
                    .into());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
                continue;
            }
            // Nobody is minting: claim it, keeping the old token for the others meanwhile.
            let mut claim = match reading.record {
                Some(r) if r.owner == id => r,
                _ => TokenRecord::empty(&id),
            };
            claim.minting_until = Some(now + chrono::Duration::from_std(LEASE).unwrap_or_default());
            match put(store, owner.vendor, &claim, reading.version).await {
                Ok(Some(version)) => break (claim, version),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(vendor = owner.vendor, error = %e, "cannot claim the shared token; minting for this process only");
                    return self.mint_here(&mut slot, &id, mint).await;
                }
            }
        };
        let (mut record, version) = claimed;
        record.minting_until = None;
        let minted = match mint().await {
            Ok(m) => m,
            Err(e) => {
                // Give the claim back (the old token, if any, stays for the others).
                if let Err(store_error) = put(store, owner.vendor, &record, Some(version)).await {
                    tracing::warn!(vendor = owner.vendor, error = %store_error, "could not release the token claim; it lapses by itself");
                }
                return Err(e);
            }
        };
        let cached = self.cache_minted(&id, minted);
        match record.seal(&key, owner.vendor, &cached) {
            Some(sealed) => match put(store, owner.vendor, &sealed, Some(version)).await {
                Ok(Some(_)) => {}
                Ok(None) => tracing::warn!(
                    vendor = owner.vendor,
                    "the token claim was taken over; this token stays with this process"
                ),
                Err(e) => tracing::warn!(vendor = owner.vendor, error = %e, "could not share the new token"),
            },
            None => tracing::warn!(
                vendor = owner.vendor,
                "could not seal the new token; it stays with this process"
            ),
        }
        let token = cached.token.clone();
        *slot = Some(cached);
        Ok(token)
    }

    fn cache_minted(&self, id: &str, minted: MintedToken) -> Cached {
        let issued_at = self.clock.now();
        Cached {
            owner: id.to_string(),
            token: minted.token,
            issued_at,
            expires_at: issued_at + chrono::Duration::from_std(minted.lifetime).unwrap_or_default(),
        }
    }

    async fn mint_here<E, F, Fut>(
        &self,
        slot: &mut Option<Cached>,
        id: &str,
        mint: F,
    ) -> std::result::Result<SecretString, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<MintedToken, E>>,
    {
        *slot = None;
        let cached = self.cache_minted(id, mint().await?);
        let token = cached.token.clone();
        *slot = Some(cached);
        Ok(token)
    }
}

// ---------------------------------------------------------------------------------------
// The record
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    /// Fingerprint of the owning account.
    owner: String,
    /// base64 of nonce ‖ ciphertext ‖ tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issued_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    /// A client claimed to mint until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    minting_until: Option<DateTime<Utc>>,
}

impl TokenRecord {
    fn empty(owner: &str) -> Self {
        TokenRecord {
            owner: owner.to_string(),
            sealed: None,
            issued_at: None,
            expires_at: None,
            minting_until: None,
        }
    }

    /// This record carrying `token`, sealed.
    fn seal(&self, key: &SealingKey, vendor: &str, token: &Cached) -> Option<TokenRecord> {
        let sealed = key.seal(&aad(vendor, &token.owner, token.expires_at), token.token.expose())?;
        Some(TokenRecord {
            owner: token.owner.clone(),
            sealed: Some(sealed),
            issued_at: Some(token.issued_at),
            expires_at: Some(token.expires_at),
            minting_until: None,
        })
    }

    /// The token, when it is this owner's, opens with `key` and has not expired.
    fn open(&self, key: &SealingKey, vendor: &str, owner: &str, now: DateTime<Utc>) -> Option<Cached> {
        if self.owner != owner {
            return None;
        }
        let (sealed, issued_at, expires_at) = (self.sealed.as_ref()?, self.issued_at?, self.expires_at?);
        if expires_at <= now {
            return None;
        }
        let token = key.open(&aad(vendor, owner, expires_at), sealed)?;
        Some(Cached {
            owner: owner.to_string(),
            token,
            issued_at,
            expires_at,
        })
    }

    /// When the store may drop the record: once neither its token nor its claim matters.
    fn ttl(&self) -> Option<i64> {
        let last = [self.expires_at, self.minting_until].into_iter().flatten().max()?;
        Some(last.timestamp() + 1)
    }
}

async fn read(store: &Store, vendor: &str, owner: &str, key: &SealingKey, now: DateTime<Utc>) -> Result<Reading> {
    let Some(r) = store.records().get(TOKEN_PK, vendor).await? else {
        return Ok(Reading {
            version: None,
            token: None,
            minting_until: None,
            record: None,
        });
    };
    // A record this code cannot read is treated like an absent one and overwritten.
    let record: Option<TokenRecord> = match Store::decode(&r) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(vendor, error = %e, "unreadable token record; replacing it");
            None
        }
    };
    Ok(Reading {
        version: Some(r.version),
        token: record.as_ref().and_then(|t| t.open(key, vendor, owner, now)),
        minting_until: record.as_ref().and_then(|t| t.minting_until),
        record,
    })
}

/// Write `record` if the stored one still has `expected` (`None`: still absent). The new
/// version, or `None` when another client wrote first.
async fn put(store: &Store, vendor: &str, record: &TokenRecord, expected: Option<u64>) -> Result<Option<u64>> {
    let version = expected.map_or(1, |v| v + 1);
    let mut r = Record::new(TOKEN_PK, vendor, serde_json::to_value(record).expect("serializable"));
    r.version = version;
    r.expires_at = record.ttl();
    let condition = expected.map_or(Condition::NotExists, Condition::VersionIs);
    match store.records().write(vec![WriteOp::Put { record: r, condition }]).await {
        Ok(()) => Ok(Some(version)),
        Err(StoreError::ConditionFailed { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------

/// The AES-256-GCM key of one owner's shared token, derived from the owner's secret.
struct SealingKey(LessSafeKey);

impl SealingKey {
    fn derive(owner: &TokenOwner<'_>, fingerprint: &str) -> SealingKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SEAL_SALT).extract(owner.secret.expose().as_bytes());
        let info = [owner.vendor.as_bytes(), b"\n", fingerprint.as_bytes()];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        SealingKey(LessSafeKey::new(UnboundKey::from(okm)))
    }

    fn seal(&self, aad: &str, plain: &str) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut buf = plain.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad.as_bytes()), &mut buf)
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Some(B64.encode(out))
    }

    fn open(&self, aad: &str, sealed: &str) -> Option<SecretString> {
        let raw = B64.decode(sealed).ok()?;
        if raw.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf).ok()?;
        String::from_utf8(plain.to_vec()).ok().map(SecretString::new)
    }
}

fn aad(vendor: &str, owner: &str, expires_at: DateTime<Utc>) -> String {
    format!("{TOKEN_PK}\n{vendor}\n{owner}\n{}", expires_at.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::SqliteRecordStore;
    use crate::ports::ManualClock;

    fn owner<'a>(secret: &'a SecretString) -> TokenOwner<'a> {
        TokenOwner {
            vendor: "beyondtrust",
            base_url: "https://support.example.com",
            account: "client-1",
            secret,
            renew_margin: Duration::from_secs(300),
        }
    }

    fn store() -> (Store, Arc<ManualClock>, tempfile::TempDir) {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let dir = tempfile::tempdir().unwrap();
        let records = SqliteRecordStore::open(&dir.path().join("s.sqlite"), clock.clone()).unwrap();
        (Store::new(Arc::new(records), clock.clone()), clock, dir)
    }

    #[derive(Debug, PartialEq)]
    struct Refused;

    impl From<TokenWaitTimeout> for Refused {
        fn from(_: TokenWaitTimeout) -> Self {
            Refused
        }
    }

    async fn minted(token: &str) -> std::result::Result<MintedToken, Refused> {
        Ok(MintedToken {
            token: SecretString::new(token),
            lifetime: Duration::from_secs(3600),
        })
    }

    #[tokio::test]
    async fn the_stored_token_is_sealed_and_opens_only_with_the_owners_secret() {
        let (store, _clock, _dir) = store();
        let secret = SecretString::new("client-secret-1");
        let cache = TokenCache::shared(store.clone());
        let token = cache
            .get(&owner(&secret), None, || minted("plain-token-value-123"))
            .await
            .unwrap();
        assert_eq!(token.expose(), "plain-token-value-123");

        let raw = store.records().get(TOKEN_PK, "beyondtrust").await.unwrap().unwrap();
        let text = raw.data.to_string();
        assert!(!text.contains("plain-token-value-123"), "{text}");
        assert!(
            !text.contains("client-1") && !text.contains("support.example.com"),
            "{text}"
        );
        assert!(raw.expires_at.is_some(), "the record expires with its token");

        // Another process with the same secret adopts it without minting.
        let other = TokenCache::shared(store.clone());
        let adopted: std::result::Result<SecretString, Refused> = other
            .get(&owner(&secret), None, || async { panic!("must not mint") })
            .await;
        assert_eq!(adopted.unwrap().expose(), "plain-token-value-123");

        // After the secret changed, the sealed copy no longer opens: a new token is minted.
        let rotated = SecretString::new("client-secret-2");
        let fresh = TokenCache::shared(store.clone())
            .get(&owner(&rotated), None, || minted("second-token"))
            .await
            .unwrap();
        assert_eq!(fresh.expose(), "second-token");
    }

    #[tokio::test]
    async fn a_tampered_expiry_does_not_open() {
        let (store, _clock, _dir) = store();
        let secret = SecretString::new("s");
        TokenCache::shared(store.clone())
            .get(&owner(&secret), None, || minted("t1"))
            .await
            .unwrap();
        let mut raw = store.records().get(TOKEN_PK, "beyondtrust").await.unwrap().unwrap();
        let later = Utc::now() + chrono::Duration::days(30);
        raw.data["expires_at"] = serde_json::json!(later);
        let version = raw.version;
        raw.version += 1;
        store
            .records()
            .write(vec![WriteOp::Put {
                record: raw,
                condition: Condition::VersionIs(version),
            }])
            .await
            .unwrap();
        let got = TokenCache::shared(store.clone())
            .get(&owner(&secret), None, || minted("t2"))
            .await
            .unwrap();
        assert_eq!(got.expose(), "t2", "the altered record was not trusted");
    }

    #[tokio::test]
    async fn a_rejected_token_is_replaced_once_and_a_renewal_keeps_the_old_one_serving() {
        let (store, clock, _dir) = store();
        let secret = SecretString::new("s");
        let a = TokenCache::shared(store.clone());
        let b = TokenCache::shared(store.clone());
        let t1 = a.get(&owner(&secret), None, || minted("t1")).await.unwrap();
        let got: std::result::Result<_, Refused> = b.get(&owner(&secret), None, || async { panic!("no mint") }).await;
        assert_eq!(got.unwrap(), t1);

        let t2 = a.get(&owner(&secret), Some(&t1), || minted("t2")).await.unwrap();
        assert_eq!(t2.expose(), "t2");
        let got: std::result::Result<_, Refused> = b
            .get(&owner(&secret), Some(&t1), || async { panic!("t2 is shared") })
            .await;
        assert_eq!(got.unwrap(), t2, "b adopts the replacement instead of minting");

        // Inside the renewal window, while another client holds the claim, the old token
        // still serves.
        clock.advance(Duration::from_secs(3600 - 200));
        let mut raw = store.records().get(TOKEN_PK, "beyondtrust").await.unwrap().unwrap();
        raw.data["minting_until"] = serde_json::json!(clock.now() + chrono::Duration::seconds(30));
        let version = raw.version;
        raw.version += 1;
        store
            .records()
            .write(vec![WriteOp::Put {
                record: raw,
                condition: Condition::VersionIs(version),
            }])
            .await
            .unwrap();
        let fresh_process = TokenCache::shared(store.clone());
        let got: std::result::Result<_, Refused> = fresh_process
            .get(&owner(&secret), None, || async { panic!("someone else renews") })
            .await;
        assert_eq!(got.unwrap(), t2);
    }

    #[tokio::test]
    async fn a_failed_mint_gives_the_claim_back() {
        let (store, _clock, _dir) = store();
        let secret = SecretString::new("s");
        let failed: std::result::Result<SecretString, Refused> = TokenCache::shared(store.clone())
            .get(&owner(&secret), None, || async { Err(Refused) })
            .await;
        assert_eq!(failed.unwrap_err(), Refused);
        let got = TokenCache::shared(store.clone())
            .get(&owner(&secret), None, || minted("t1"))
            .await
            .unwrap();
        assert_eq!(got.expose(), "t1", "the next client could claim at once");
    }

    #[tokio::test]
    async fn forgetting_drops_the_shared_copy_too() {
        let (store, _clock, _dir) = store();
        let secret = SecretString::new("s");
        let cache = TokenCache::shared(store.clone());
        cache.get(&owner(&secret), None, || minted("t1")).await.unwrap();
        assert!(!format!("{cache:?}").contains("t1"), "the token never prints");
        cache.forget("beyondtrust").await;
        assert!(store.records().get(TOKEN_PK, "beyondtrust").await.unwrap().is_none());
        let got = TokenCache::shared(store.clone())
            .get(&owner(&secret), None, || minted("t2"))
            .await
            .unwrap();
        assert_eq!(got.expose(), "t2");
    }

    #[test]
    fn renewal_is_the_margin_early_or_at_half_life() {
        let exp = DateTime::from_timestamp(10_000, 0).unwrap();
        let margin = Duration::from_secs(300);
        assert_eq!(
            renew_at(exp, Duration::from_secs(3600), margin).timestamp(),
            10_000 - 300
        );
        assert_eq!(renew_at(exp, Duration::from_secs(120), margin).timestamp(), 10_000 - 60);
    }
}
