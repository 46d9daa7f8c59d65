//! `Mailer` for the local server: every mail becomes one JSON file in a folder instead of
//! leaving the machine, and `GET /api/outbox` lists them.
//!
//! A file appears under its final name only once its content is on disk (written to a
//! temporary name, fsynced, renamed, folder fsynced), so a crash never leaves half a mail.
//! File names start with a strictly increasing timestamp, so name order is send order.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ports::{MailError, Mailer, OutgoingMail};

const EXTENSION: &str = "json";
const TEMP_PREFIX: &str = ".tmp-";

/// Writes mails into a folder.
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
    /// The last timestamp (microseconds) handed out, so ids grow even within one tick.
    last_stamp: Arc<Mutex<u64>>,
}

/// What one outbox file holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    id: String,
    queued_at: chrono::DateTime<chrono::Utc>,
    #[serde(flatten)]
    mail: OutgoingMail,
}

impl OutboxMailer {
    /// An outbox in `dir`, created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(OutboxMailer {
            dir,
            last_stamp: Arc::new(Mutex::new(0)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every mail in the outbox as `(id, mail)`, oldest first and newest last. Files that
    /// cannot be read are skipped with a warning.
    pub fn list(&self) -> Vec<(String, OutgoingMail)> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "outbox folder unreadable");
                return Vec::new();
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == EXTENSION)
                    && !p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(TEMP_PREFIX))
            })
            .collect();
        paths.sort();
        paths
            .into_iter()
            .filter_map(|path| {
                let read = fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).map_err(|e| e.to_string()));
                match read {
                    Ok(stored) => Some((stored.id, stored.mail)),
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "skipping unreadable outbox file");
                        None
                    }
                }
            })
            .collect()
    }

    fn next_id(&self) -> String {
        let now = chrono::Utc::now().timestamp_micros().max(0) as u64;
        let mut last = self.last_stamp.lock().expect("outbox stamp lock");
        *last = now.max(*last + 1);
        format!("{:020}-{}", *last, uuid::Uuid::new_v4().simple())
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    #[tracing::instrument(skip_all, fields(recipients = mail.to.len()))]
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailError> {
        mail.check()?;
        let id = self.next_id();
        let stored = Stored {
            id: id.clone(),
            queued_at: chrono::Utc::now(),
            mail: mail.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&stored).map_err(|e| MailError::Unavailable(Box::new(e)))?;
        let dir = self.dir.clone();
        let name = format!("{id}.{EXTENSION}");
        tokio::task::spawn_blocking(move || write_durably(&dir, &name, &bytes))
            .await
            .map_err(|e| MailError::Unavailable(Box::new(e)))?
            .map_err(|e| MailError::Unavailable(Box::new(e)))?;
        Ok(id)
    }
}

/// Write `bytes` to `dir/name` so that the file is either absent or complete.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temp = dir.join(format!("{TEMP_PREFIX}{name}"));
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Make a rename in `dir` durable (a no-op where folders cannot be opened, e.g. Windows).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_even_within_one_clock_tick() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = OutboxMailer::new(dir.path()).unwrap();
        let ids: Vec<String> = (0..50).map(|_| outbox.next_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted);
    }
}
