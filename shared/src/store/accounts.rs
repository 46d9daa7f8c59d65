//! Repositories of accounts and access: password credentials, sessions and personal API
//! tokens (keyed by the hash of their secret), sign-in failure counters and locks, the
//! first-admin setup token and marker, and the audit log.
//!
//! Keys: `credential/<agent>`; `session/<hash>` (index `session-of#<agent>`);
//! `api-token/<hash>` (index `api-tokens-of#<agent>`, sk = token id); counters
//! `login-failures/<key>@<window>`; `login-lock/<key>`; `setup-token/<hash>`;
//! `setup/first-admin`; `audit/<id>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{sk_id, Listing, PageRequest, Store};
use crate::domain::accounts::{ApiToken, AuditEntry, Session, AUDIT_LOG_DAYS};
use crate::domain::desk::Agent;
use crate::error::Result;
use crate::ports::{Condition, Index, Query, Record, StoreError, WriteOp};

const CREDENTIAL: &str = "credential";
const SESSION: &str = "session";
const API_TOKEN: &str = "api-token";
const LOGIN_FAILURES: &str = "login-failures";
const LOGIN_LOCK: &str = "login-lock";
const SETUP_TOKEN: &str = "setup-token";
const SETUP: &str = "setup";
const FIRST_ADMIN: &str = "first-admin";
const AUDIT: &str = "audit";
const AGENT: &str = super::desk::AGENT;

/// An agent's password hash (a PHC string: algorithm, parameters, salt, hash).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    pub agent_id: u64,
    pub password_hash: String,
    pub changed_at: DateTime<Utc>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("agent_id", &self.agent_id)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// A stored personal token: what is listed, under the hash of its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredToken {
    #[serde(flatten)]
    token: ApiToken,
}

/// A sign-in lock and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Lock {
    until: DateTime<Utc>,
}

fn session_index(agent_id: u64) -> String {
    format!("session-of#{agent_id}")
}

fn token_index(agent_id: u64) -> String {
    format!("api-tokens-of#{agent_id}")
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serializable")
}

impl Store {
    // ---- credentials --------------------------------------------------------------------

    pub async fn credential(&self, agent_id: u64) -> Result<Option<Credential>> {
        Ok(self.load(CREDENTIAL, agent_id).await?.map(|(c, _)| c))
    }

    fn credential_put(c: &Credential) -> WriteOp {
        WriteOp::Put {
            record: Self::record_of(CREDENTIAL, c.agent_id, c, 1),
            condition: Condition::Always,
        }
    }

    /// Set the agent's password hash (the agent must exist).
    pub async fn set_credential(&self, c: &Credential) -> Result<()> {
        Ok(self
            .records()
            .write(vec![Self::credential_put(c), Self::must_exist(AGENT, c.agent_id)])
            .await?)
    }

    /// Create the first admin: the agent, its credential and the marker that an admin was
    /// set up, in one transaction; `setup_token` (a hash) is consumed in the same one.
    /// `ConditionFailed` on `setup/first-admin` when an admin was already set up, on the
    /// setup token when it is unknown or used.
    pub async fn create_first_admin(
        &self,
        agent: crate::domain::desk::NewAgent,
        password_hash: String,
        setup_token: Option<&str>,
    ) -> Result<Agent> {
        let id = self.next_id(AGENT).await?;
        let agent = agent.into_agent(id)?;
        let now = self.clock().now();
        let mut ops = vec![
            Self::put_new(AGENT, id, &agent),
            Self::credential_put(&Credential {
                agent_id: id,
                password_hash,
                changed_at: now,
            }),
            WriteOp::Put {
                record: Record::new(SETUP, FIRST_ADMIN, serde_json::json!({"agent_id": id, "at": now})),
                condition: Condition::NotExists,
            },
        ];
        if let Some(hash) = setup_token {
            ops.push(WriteOp::Delete {
                pk: SETUP_TOKEN.into(),
                sk: hash.into(),
                condition: Condition::Exists,
            });
        }
        self.records().write(ops).await?;
        Ok(agent)
    }

    /// Whether the first admin was set up.
    pub async fn first_admin_exists(&self) -> Result<bool> {
        Ok(self.records().get(SETUP, FIRST_ADMIN).await?.is_some())
    }

    /// Mark that an admin exists (for data made before accounts, when an admin is made by
    /// other means); true if this call set it.
    pub async fn mark_first_admin(&self, agent_id: u64) -> Result<bool> {
        let op = WriteOp::Put {
            record: Record::new(SETUP, FIRST_ADMIN, serde_json::json!({"agent_id": agent_id})),
            condition: Condition::NotExists,
        };
        match self.records().write(vec![op]).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Keep a setup token (its hash) until `expires_at`.
    pub async fn save_setup_token(&self, hash: &str, expires_at: DateTime<Utc>) -> Result<()> {
        let mut r = Record::new(SETUP_TOKEN, hash, serde_json::json!({"expires_at": expires_at}));
        r.expires_at = Some(expires_at.timestamp());
        Ok(self
            .records()
            .write(vec![WriteOp::Put {
                record: r,
                condition: Condition::Always,
            }])
            .await?)
    }

    /// Whether a setup token with this hash is kept and not expired by the store's clock.
    pub async fn setup_token_valid(&self, hash: &str) -> Result<bool> {
        let Some(r) = self.records().get(SETUP_TOKEN, hash).await? else {
            return Ok(false);
        };
        Ok(r.expires_at.is_some_and(|at| at > self.clock().now().timestamp()))
    }

    // ---- sessions -----------------------------------------------------------------------

    fn session_record(hash: &str, s: &Session, expires_at: DateTime<Utc>, version: u64) -> Record {
        let mut r = Record::new(SESSION, hash, json(s));
        r.version = version;
        r.gsi1 = Some((session_index(s.agent_id), hash.to_string()));
        r.expires_at = Some(expires_at.timestamp());
        r
    }

    pub async fn create_session(&self, hash: &str, s: &Session, expires_at: DateTime<Utc>) -> Result<()> {
        Ok(self
            .records()
            .write(vec![WriteOp::Put {
                record: Self::session_record(hash, s, expires_at, 1),
                condition: Condition::NotExists,
            }])
            .await?)
    }

    /// The session stored under `hash` and its version.
    pub async fn session(&self, hash: &str) -> Result<Option<(Session, u64)>> {
        match self.records().get(SESSION, hash).await? {
            Some(r) => Ok(Some((Self::decode(&r)?, r.version))),
            None => Ok(None),
        }
    }

    /// Store a newer `last_seen_at`; losing a race to another touch is fine.
    pub async fn touch_session(&self, hash: &str, s: &Session, version: u64, expires_at: DateTime<Utc>) -> Result<()> {
        let op = WriteOp::Put {
            record: Self::session_record(hash, s, expires_at, version + 1),
            condition: Condition::VersionIs(version),
        };
        match self.records().write(vec![op]).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete_session(&self, hash: &str) -> Result<()> {
        Ok(self
            .records()
            .write(vec![WriteOp::Delete {
                pk: SESSION.into(),
                sk: hash.into(),
                condition: Condition::Always,
            }])
            .await?)
    }

    /// End every session of the agent except `keep` (a hash); returns how many ended.
    pub async fn end_sessions_of(&self, agent_id: u64, keep: Option<&str>) -> Result<usize> {
        let found = self
            .all_records(Query::partition(Index::Gsi1, session_index(agent_id)))
            .await?;
        let ops: Vec<WriteOp> = found
            .iter()
            .filter(|r| Some(r.sk.as_str()) != keep)
            .map(|r| WriteOp::Delete {
                pk: SESSION.into(),
                sk: r.sk.clone(),
                condition: Condition::Always,
            })
            .collect();
        let n = ops.len();
        for chunk in ops.chunks(100) {
            self.records().write(chunk.to_vec()).await?;
        }
        Ok(n)
    }

    // ---- personal API tokens ----------------------------------------------------------------

    /// Store a new token under the hash of its secret.
    pub async fn create_api_token(&self, hash: &str, token: &ApiToken) -> Result<()> {
        let mut r = Record::new(API_TOKEN, hash, json(&StoredToken { token: token.clone() }));
        r.gsi1 = Some((token_index(token.agent_id), sk_id(token.id)));
        Ok(self
            .records()
            .write(vec![WriteOp::Put {
                record: r,
                condition: Condition::NotExists,
            }])
            .await?)
    }

    pub async fn next_api_token_id(&self) -> Result<u64> {
        self.next_id(API_TOKEN).await
    }

    /// The token whose secret hashes to `hash`, and its record's version.
    pub async fn api_token_by_hash(&self, hash: &str) -> Result<Option<(ApiToken, u64)>> {
        match self.records().get(API_TOKEN, hash).await? {
            Some(r) => Ok(Some((Self::decode::<StoredToken>(&r)?.token, r.version))),
            None => Ok(None),
        }
    }

    /// Write down that the token was used (`token.last_used_at` set by the caller). A
    /// concurrent use that wrote first, or a revoke, wins: nothing to do then.
    pub async fn note_api_token_use(&self, hash: &str, token: &ApiToken, version: u64) -> Result<()> {
        let mut r = Record::new(API_TOKEN, hash, json(&StoredToken { token: token.clone() }));
        r.gsi1 = Some((token_index(token.agent_id), sk_id(token.id)));
        r.version = version + 1;
        let op = WriteOp::Put {
            record: r,
            condition: Condition::VersionIs(version),
        };
        match self.records().write(vec![op]).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The agent's tokens, oldest first.
    pub async fn api_tokens_of(&self, agent_id: u64, page: &PageRequest) -> Result<Listing<ApiToken>> {
        let l = self
            .list(Index::Gsi1, &token_index(agent_id), false, page, |_: &StoredToken| true)
            .await?;
        Ok(Listing {
            items: l.items.into_iter().map(|t| t.token).collect(),
            next: l.next,
        })
    }

    /// Delete the agent's token `id`; `None` when the agent has no such token.
    pub async fn delete_api_token(&self, agent_id: u64, id: u64) -> Result<Option<ApiToken>> {
        let mut q = Query::partition(Index::Gsi1, token_index(agent_id));
        q.sk_prefix = Some(sk_id(id));
        q.limit = 1;
        let page = self.records().query(&q).await?;
        let Some(r) = page.items.into_iter().next() else {
            return Ok(None);
        };
        let token = Self::decode::<StoredToken>(&r)?.token;
        self.records()
            .write(vec![WriteOp::Delete {
                pk: API_TOKEN.into(),
                sk: r.sk,
                condition: Condition::Always,
            }])
            .await?;
        Ok(Some(token))
    }

    // ---- sign-in throttle -------------------------------------------------------------------

    /// Count one failed sign-in of `key` (e.g. `account:<email>`, `address:<ip>`) in the
    /// window starting at `window_start`; the counter may be dropped after `window_end`.
    pub async fn count_login_failure(&self, key: &str, window_start: i64, window_end: i64) -> Result<u64> {
        Ok(self
            .records()
            .increment_expiring(LOGIN_FAILURES, &format!("{key}@{window_start}"), 1, window_end)
            .await?)
    }

    /// Refuse sign-in for `key` until `until`.
    pub async fn lock_login(&self, key: &str, until: DateTime<Utc>) -> Result<()> {
        let mut r = Record::new(LOGIN_LOCK, key, json(&Lock { until }));
        r.expires_at = Some(until.timestamp() + 1);
        Ok(self
            .records()
            .write(vec![WriteOp::Put {
                record: r,
                condition: Condition::Always,
            }])
            .await?)
    }

    /// When the lock on `key` ends, if it is locked at `now`.
    pub async fn login_locked_until(&self, key: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let Some(r) = self.records().get(LOGIN_LOCK, key).await? else {
            return Ok(None);
        };
        let lock: Lock = Self::decode(&r)?;
        Ok((lock.until > now).then_some(lock.until))
    }

    // ---- audit log ----------------------------------------------------------------------

    /// Append an entry (its `id` and `at` are set here), kept `AUDIT_LOG_DAYS`.
    pub async fn append_audit(&self, mut entry: AuditEntry) -> Result<AuditEntry> {
        entry.id = self.next_id(AUDIT).await?;
        entry.at = self.clock().now();
        let mut r = Self::record_of(AUDIT, entry.id, &entry, 1);
        r.expires_at = Some(entry.at.timestamp() + AUDIT_LOG_DAYS * 24 * 3600);
        self.records()
            .write(vec![WriteOp::Put {
                record: r,
                condition: Condition::NotExists,
            }])
            .await?;
        Ok(entry)
    }

    /// The audit log, newest first.
    pub async fn audit_log(&self, page: &PageRequest) -> Result<Listing<AuditEntry>> {
        self.list(Index::Primary, AUDIT, true, page, |_: &AuditEntry| true)
            .await
    }
}
