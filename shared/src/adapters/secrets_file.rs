//! `SecretStore` for the local server: all secrets as one JSON object in one file, readable
//! only by its owner (mode 0600 on unix).
//!
//! Every `put` rewrites the whole file through a temporary file (fsync, rename, folder
//! fsync), so the file always holds either the old or the new map. A mutex serialises
//! read-modify-write within the process; one process owns the file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::adapters::outbox::sync_dir;
use crate::ports::{SecretError, SecretStore, SecretString};

/// Secrets in a JSON file. Debug shows the path, never values.
#[derive(Debug, Clone)]
pub struct FileSecretStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// Guards the file, and holds the map as last read or written with the file's
    /// modification time and length then: a `get` re-reads the file only when those
    /// changed (a webhook reads its state secret on every request).
    lock: Mutex<Option<Cached>>,
}

/// A file's modification time, length and (on unix) inode: `put` replaces the file by a
/// rename, so a rewrite by another process changes the inode even within one clock tick.
type Stamp = (std::time::SystemTime, u64, u64);

/// The map as last read, and the file's stamp then. Debug never shows values.
struct Cached {
    stamp: Stamp,
    map: Map,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").finish_non_exhaustive()
    }
}

/// The file's stamp, `None` when it does not exist.
fn stamp(path: &Path) -> std::io::Result<Option<Stamp>> {
    match fs::metadata(path) {
        Ok(m) => {
            #[cfg(unix)]
            let ino = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let ino = 0;
            Ok(Some((m.modified()?, m.len(), ino)))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

type Map = BTreeMap<String, String>;

impl FileSecretStore {
    /// Secrets at `path`. The folder is created if missing and an existing file is read
    /// once, so a damaged file stops start-up instead of the first request; the file
    /// itself is created on the first `put`.
    pub fn new(path: impl Into<PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        read_map(&path)?;
        Ok(FileSecretStore {
            inner: Arc::new(Inner {
                path,
                lock: Mutex::new(None),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run `f` on a blocking thread while holding the file lock.
    async fn locked<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Path, &mut Option<Cached>) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, SecretError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut cached = inner.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&inner.path, &mut cached)
        })
        .await
        .map_err(SecretError::unavailable)?
        .map_err(SecretError::unavailable)
    }
}

#[async_trait]
impl SecretStore for FileSecretStore {
    #[tracing::instrument(skip_all, fields(%name))]
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretError> {
        let name = name.to_string();
        self.locked(move |path, cached| {
            let Some(now) = stamp(path)? else {
                return Ok(None);
            };
            let fresh = cached.as_ref().is_some_and(|c| c.stamp == now);
            if !fresh {
                *cached = Some(Cached {
                    stamp: now,
                    map: read_map(path)?,
                });
            }
            Ok(cached
                .as_ref()
                .and_then(|c| c.map.get(&name))
                .map(|v| SecretString::new(v.clone())))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(%name))]
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), SecretError> {
        let name = name.to_string();
        let value = value.clone();
        self.locked(move |path, cached| {
            *cached = None;
            let mut map = read_map(path)?;
            map.insert(name, value.expose().to_string());
            write_map(path, &map)
        })
        .await
    }
}

fn read_map(path: &Path) -> std::io::Result<Map> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            // Deliberately without the serde message: it may quote part of a value.
            .map_err(|_| {
                std::io::Error::new(
                    ErrorKind::InvalidData,
                    format!("{} is not a JSON object of strings", path.display()),
                )
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e),
    }
}

fn write_map(path: &Path, map: &Map) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "secret file path has no file name"))?;
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let bytes = serde_json::to_vec_pretty(map).map_err(std::io::Error::other)?;
    let result = (|| {
        let mut file = private_file(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// A new file only its owner can read, with that mode from the start (no window in
/// which the default umask applies).
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `get` answers from the map it read last, but sees a rewrite of the file by another
    /// store (another process) at once, even one of the same length.
    #[tokio::test]
    async fn get_sees_another_writers_change_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let (ours, theirs) = (
            FileSecretStore::new(&path).unwrap(),
            FileSecretStore::new(&path).unwrap(),
        );
        ours.put("k", &SecretString::new("v1")).await.unwrap();
        assert_eq!(ours.get("k").await.unwrap().unwrap().expose(), "v1");
        assert_eq!(ours.get("k").await.unwrap().unwrap().expose(), "v1");
        theirs.put("k", &SecretString::new("v2")).await.unwrap();
        assert_eq!(ours.get("k").await.unwrap().unwrap().expose(), "v2");
        fs::remove_file(&path).unwrap();
        assert!(ours.get("k").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn values_survive_a_new_store_on_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        FileSecretStore::new(&path)
            .unwrap()
            .put("datto", &SecretString::new("s3cr3t"))
            .await
            .unwrap();
        let again = FileSecretStore::new(&path).unwrap().get("datto").await.unwrap();
        assert_eq!(again.as_ref().map(SecretString::expose), Some("s3cr3t"));
    }

    #[test]
    fn a_damaged_file_stops_start_up_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        fs::write(&path, b"{\"datto\": \"half-written-s3cr3t").unwrap();
        let err = FileSecretStore::new(&path).unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let store = FileSecretStore::new(&path).unwrap();
        store.put("a", &SecretString::new("1")).await.unwrap();
        store.put("b", &SecretString::new("2")).await.unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files remain");
    }

    #[tokio::test]
    async fn concurrent_puts_keep_every_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSecretStore::new(dir.path().join("secrets.json")).unwrap();
        let puts = (0..20).map(|i| {
            let store = store.clone();
            async move { store.put(&format!("n{i}"), &SecretString::new(format!("v{i}"))).await }
        });
        for r in futures::future::join_all(puts).await {
            r.unwrap();
        }
        for i in 0..20 {
            let got = store.get(&format!("n{i}")).await.unwrap();
            assert_eq!(got.map(|s| s.expose().to_string()), Some(format!("v{i}")));
        }
    }
}
