//! `deskbridge backup` and `deskbridge restore`: an online, consistent copy of a data
//! dir's databases (records and queues), secrets and outbox in one tar file, and back.
//!
//! Each SQLite database is copied with `VACUUM INTO`, one read transaction: a consistent
//! snapshot taken while the server keeps writing (WAL lets readers and the writer go on
//! together). The queues are copied first and the records second, so a message in the
//! backup never refers to a record the backup lacks; a record whose message was sent after
//! the queue copy is caught by the sweeps (pending closes are resent after two minutes).
//!
//! Restore never runs under a server: `serve` holds an exclusive lock on `serve.lock` in the
//! data dir, and restore takes the same lock or refuses. It refuses a data dir that already
//! holds data unless `--force`, and even then moves the old files into `replaced-<time>/`
//! instead of deleting them. The archive is unpacked and checked (`PRAGMA integrity_check`)
//! beside the data dir before anything there is touched.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use rusqlite::Connection;
use serde_json::json;

/// The records database of a data dir.
pub const RECORDS_DB: &str = "deskbridge.sqlite";
/// The queues database of a data dir.
pub const QUEUES_DB: &str = "queues.sqlite";
/// Secrets (webhook state, event token, vendor API secrets) and the generated API token.
const SECRET_FILES: [&str; 2] = ["secrets.json", "api-token"];
const OUTBOX: &str = "outbox";
const MANIFEST: &str = "manifest.json";
const LOCK: &str = "serve.lock";
const FORMAT: &str = "deskbridge-backup";

/// What a backup or restore copied: each database with its rows per table, and the other files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub databases: Vec<(String, Vec<(String, u64)>)>,
    pub files: Vec<String>,
}

#[cfg(test)]
impl Copied {
    /// Rows of `table` in `db`, 0 when absent.
    pub fn rows(&self, db: &str, table: &str) -> u64 {
        self.databases
            .iter()
            .filter(|(d, _)| d == db)
            .flat_map(|(_, t)| t.iter())
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n)
    }
}

/// One line for the operator: rows per table of each database, and the other files.
pub fn describe(c: &Copied) -> String {
    let dbs: Vec<String> = c
        .databases
        .iter()
        .map(|(db, tables)| {
            let t: Vec<String> = tables.iter().map(|(t, n)| format!("{t} {n}")).collect();
            format!("{db} ({})", t.join(", "))
        })
        .collect();
    format!("{}; {} other files", dbs.join("; "), c.files.len())
}

/// The lock `serve` holds for as long as it runs; `restore` needs it too.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Take the data dir's lock (creating the dir), or fail naming the holder's likely cause.
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let path = data_dir.join(LOCK);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // Called through fs4's trait: std's own `File::try_lock` is newer than our MSRV.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(fs4::TryLockError::WouldBlock) => bail!(
            "{} is in use by a running deskbridge server (it holds {}); stop it first",
            data_dir.display(),
            path.display()
        ),
        Err(fs4::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

fn tables(db: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .with_context(|| format!("checking {}", db.display()))?;
    ensure!(ok == "ok", "{} failed its integrity check: {ok}", db.display());
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    names
        .into_iter()
        .map(|t| {
            let n: u64 = conn.query_row(
                &format!("SELECT count(*) FROM \"{}\"", t.replace('"', "\"\"")),
                [],
                |r| r.get(0),
            )?;
            Ok((t, n))
        })
        .collect()
}

/// `VACUUM INTO`: a consistent copy of a live database in one read transaction.
fn snapshot(db: &Path, to: &Path) -> anyhow::Result<()> {
    let conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute("VACUUM INTO ?1", [to.to_str().context("backup path is not UTF-8")?])
        .with_context(|| format!("copying {}", db.display()))?;
    Ok(())
}

fn write_private(path: &Path) -> anyhow::Result<File> {
    let mut opts = File::options();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).with_context(|| format!("creating {}", path.display()))
}

fn sync_dir(dir: &Path) {
    // Makes renames durable; folders cannot be opened everywhere (Windows), so best effort.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Copy `data_dir` into the tar file `to` while a server may be running on it. With
/// `with_secrets` the secrets file and API token go along (then `to` is a secret itself:
/// it is written with mode 0600). The file appears only once complete.
pub fn backup(data_dir: &Path, to: &Path, with_secrets: bool) -> anyhow::Result<Copied> {
    let records = data_dir.join(RECORDS_DB);
    ensure!(
        records.is_file(),
        "{} holds no deskbridge data ({RECORDS_DB} is missing)",
        data_dir.display()
    );
    let out_dir = parent_of(to);
    let staging = tempfile::Builder::new()
        .prefix(".deskbridge-backup-")
        .tempdir_in(&out_dir)
        .with_context(|| format!("making a staging dir in {}", out_dir.display()))?;
    let mut copied = Copied::default();
    // Queues first: see the module comment.
    for db in [QUEUES_DB, RECORDS_DB] {
        let src = data_dir.join(db);
        if !src.is_file() {
            continue;
        }
        let dst = staging.path().join(db);
        snapshot(&src, &dst)?;
        copied.databases.push((db.to_string(), tables(&dst)?));
    }

    let partial = out_dir.join(format!(
        ".{}.partial",
        to.file_name().context("--to names no file")?.to_string_lossy()
    ));
    let mut tar = tar::Builder::new(write_private(&partial)?);
    for (db, _) in &copied.databases {
        tar.append_path_with_name(staging.path().join(db), db)?;
    }
    if with_secrets {
        for f in SECRET_FILES {
            let p = data_dir.join(f);
            if p.is_file() {
                tar.append_path_with_name(&p, f)?;
                copied.files.push(f.to_string());
            }
        }
    }
    let outbox = data_dir.join(OUTBOX);
    if outbox.is_dir() {
        // Mails are written under a temporary name and renamed: a listed file is complete.
        for entry in fs::read_dir(&outbox)? {
            let p = entry?.path();
            if p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                let name = format!("{OUTBOX}/{}", p.file_name().unwrap().to_string_lossy());
                tar.append_path_with_name(&p, &name)?;
                copied.files.push(name);
            }
        }
    }
    let manifest = json!({
        "format": FORMAT,
        "version": 1,
        "created_at": chrono::Utc::now().to_rfc3339(),
        "databases": copied.databases.iter().map(|(d, t)| json!({"file": d, "tables": t})).collect::<Vec<_>>(),
        "files": copied.files,
        "secrets_included": with_secrets,
    });
    let bytes = serde_json::to_vec_pretty(&manifest)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST, bytes.as_slice())?;
    let mut file = tar.into_inner()?;
    file.flush()?;
    file.sync_all()?;
    fs::rename(&partial, to).with_context(|| format!("moving the backup to {}", to.display()))?;
    sync_dir(&out_dir);
    Ok(copied)
}

/// Everything a data dir holds that a restore replaces.
fn data_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> = Vec::new();
    for db in [RECORDS_DB, QUEUES_DB] {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            names.push(format!("{db}{suffix}"));
        }
    }
    names.extend(SECRET_FILES.iter().map(|s| s.to_string()));
    names.push(OUTBOX.to_string());
    names
        .into_iter()
        .map(|n| data_dir.join(n))
        .filter(|p| p.exists())
        .collect()
}

/// Bring the backup `from` into `data_dir`. Refuses while a server runs there, and refuses
/// a data dir with data in it unless `force` (the old files then go to `replaced-<time>/`).
/// Returns what was restored and where the old files went, if anywhere.
pub fn restore(from: &Path, data_dir: &Path, force: bool) -> anyhow::Result<(Copied, Option<PathBuf>)> {
    let _lock = lock_data_dir(data_dir)?;
    let staging = tempfile::Builder::new()
        .prefix(".deskbridge-restore-")
        .tempdir_in(data_dir)
        .with_context(|| format!("making a staging dir in {}", data_dir.display()))?;
    let file = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut archive = tar::Archive::new(file);
    for entry in archive
        .entries()
        .with_context(|| format!("{} is not a tar file", from.display()))?
    {
        let mut entry = entry?;
        // unpack_in refuses paths that would land outside the staging dir.
        ensure!(
            entry.unpack_in(staging.path())?,
            "{} holds an entry outside the archive root: {}",
            from.display(),
            entry.path()?.display()
        );
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(staging.path().join(MANIFEST)).with_context(|| format!("{} has no {MANIFEST}", from.display()))?,
    )
    .with_context(|| format!("{MANIFEST} in {} is not JSON", from.display()))?;
    ensure!(
        manifest["format"] == FORMAT && manifest["version"] == 1,
        "{} is not a deskbridge backup (version 1)",
        from.display()
    );
    ensure!(
        staging.path().join(RECORDS_DB).is_file(),
        "{} holds no {RECORDS_DB}",
        from.display()
    );
    let mut copied = Copied::default();
    for db in [RECORDS_DB, QUEUES_DB] {
        let p = staging.path().join(db);
        if p.is_file() {
            copied.databases.push((db.to_string(), tables(&p)?));
        }
    }

    let existing = data_files(data_dir);
    let mut replaced = None;
    if !existing.is_empty() {
        if !force {
            bail!(
                "{} already holds data ({}); restore with --force to replace it (the old files are kept in a replaced-<time>/ folder)",
                data_dir.display(),
                existing
                    .iter()
                    .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let aside = data_dir.join(format!("replaced-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")));
        fs::create_dir(&aside).with_context(|| format!("creating {}", aside.display()))?;
        for p in existing {
            fs::rename(&p, aside.join(p.file_name().unwrap()))
                .with_context(|| format!("moving {} aside", p.display()))?;
        }
        replaced = Some(aside);
    }
    for entry in fs::read_dir(staging.path())? {
        let p = entry?.path();
        let name = p.file_name().unwrap().to_owned();
        if name == MANIFEST {
            continue;
        }
        if name != OUTBOX {
            copied.files.push(name.to_string_lossy().to_string());
        }
        fs::rename(&p, data_dir.join(&name)).with_context(|| format!("moving {} into place", p.display()))?;
    }
    sync_dir(data_dir);
    Ok((copied, replaced))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_with(dir: &Path, name: &str, rows: u32) {
        let c = Connection::open(dir.join(name)).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x INTEGER)")
            .unwrap();
        for i in 0..rows {
            c.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
    }

    #[test]
    fn a_backup_round_trips_and_restore_guards_existing_data() {
        let src = tempfile::tempdir().unwrap();
        db_with(src.path(), RECORDS_DB, 3);
        db_with(src.path(), QUEUES_DB, 2);
        fs::write(src.path().join("secrets.json"), "{}").unwrap();
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("b.tar");
        let made = backup(src.path(), &file, true).unwrap();
        assert_eq!((made.rows(RECORDS_DB, "t"), made.rows(QUEUES_DB, "t")), (3, 2));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }

        let dst = tempfile::tempdir().unwrap();
        let (got, replaced) = restore(&file, dst.path(), false).unwrap();
        let sorted = |mut d: Vec<(String, Vec<(String, u64)>)>| {
            d.sort();
            d
        };
        assert_eq!(sorted(got.databases), sorted(made.databases));
        assert!(replaced.is_none());
        assert!(dst.path().join("secrets.json").is_file());

        // Data there now: refused without --force; with it, the old files are kept aside.
        let err = restore(&file, dst.path(), false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        let (_, replaced) = restore(&file, dst.path(), true).unwrap();
        assert!(replaced.unwrap().join(RECORDS_DB).is_file());
    }

    #[test]
    fn restore_refuses_while_the_data_dir_is_locked_and_refuses_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_data_dir(dir.path()).unwrap();
        let err = restore(Path::new("/nonexistent.tar"), dir.path(), true).unwrap_err();
        assert!(err.to_string().contains("running deskbridge server"), "{err}");
        drop(lock);
        let junk = dir.path().join("junk.tar");
        fs::write(&junk, b"not a tar file at all").unwrap();
        assert!(restore(&junk, dir.path(), true).is_err());
        assert!(!dir.path().join(RECORDS_DB).exists(), "a failed restore wrote data");
    }
}
