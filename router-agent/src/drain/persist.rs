//! The drain state file: `{"version":1,"all":{...}|null,"services":{"dns":{...}}}`.
//!
//! Written before the operator's `drain` / `undrain` is answered, atomically (a temporary
//! file in the same directory, fsync, rename, fsync of the directory): a crash leaves the old
//! state or the new, never half of one. Read at start before the speaker exists, so that the
//! first UPDATE after a restart (cold or graceful) or a reboot is already drained. A file
//! that cannot be read or understood drains everything: failing safe draws no traffic to a
//! host that may be under maintenance.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{DrainEntry, DrainState};

const VERSION: u64 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainFile {
    version: u64,
    all: Option<DrainEntry>,
    #[serde(default)]
    services: BTreeMap<String, DrainEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: not a drain state file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: version {found}, this agent reads version {VERSION}")]
    Version { path: PathBuf, found: String },
}

/// The state in `path`; None: no file (never drained, or the first start).
pub fn load(path: &Path) -> Result<Option<DrainState>, LoadError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LoadError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let corrupt = |reason: String| LoadError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| corrupt(err.to_string()))?;
    if value.get("version").and_then(|v| v.as_u64()) != Some(VERSION) {
        return Err(LoadError::Version {
            path: path.to_owned(),
            found: value
                .get("version")
                .map_or("none".into(), |v| v.to_string()),
        });
    }
    let file: DrainFile = serde_json::from_value(value).map_err(|err| corrupt(err.to_string()))?;
    Ok(Some(DrainState {
        all: file.all,
        services: file.services,
    }))
}

/// [`load`] at start: the state to begin with, problems logged once. An unreadable or corrupt
/// file (ERROR) drains everything with `prepend` from the config; a drained service that is
/// not configured any more is kept (WARN): configured again, it comes back drained.
pub fn load_at_start(
    path: &Path,
    prepend: u8,
    services: &BTreeSet<String>,
    now_unix: u64,
) -> DrainState {
    match load(path) {
        Ok(None) => DrainState::default(),
        Ok(Some(state)) => {
            if let Some(all) = &state.all {
                tracing::warn!(
                    since_unix = all.since_unix,
                    file = %path.display(),
                    "starting drained (all routes), as left by `router-agent drain`; \
                     `router-agent undrain` ends it"
                );
            }
            for (name, entry) in &state.services {
                if services.contains(name) {
                    tracing::warn!(service = %name, since_unix = entry.since_unix,
                        "starting with the service drained");
                } else {
                    tracing::warn!(service = %name, file = %path.display(),
                        "drained service is not configured; kept drained in the state file");
                }
            }
            state
        }
        Err(err) => {
            tracing::error!(
                "{err}; starting drained (all routes) to draw no traffic: check the file, \
                 then `router-agent undrain`"
            );
            DrainState {
                all: Some(DrainEntry {
                    since_unix: now_unix,
                    prepend,
                    withdraw_at_unix: None,
                }),
                services: BTreeMap::new(),
            }
        }
    }
}

/// Writes `state` to `path` atomically and durably, mode 0644; the directory is created
/// (0755) if missing.
pub fn save(path: &Path, state: &DrainState) -> io::Result<()> {
    let context = |what: &str, err: io::Error| {
        io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| context("creating the directory of", e))?;
    let file = DrainFile {
        version: VERSION,
        all: state.all.clone(),
        services: state.services.clone(),
    };
    let mut text = serde_json::to_vec_pretty(&file).expect("plain data serializes");
    text.push(b'\n');
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| context("writing", e))?;
        out.write_all(&text).map_err(|e| context("writing", e))?;
        out.sync_all().map_err(|e| context("syncing", e))?;
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        context("renaming into", e)
    })?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| context("syncing the directory of", e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("drain-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn entry(since: u64) -> DrainEntry {
        DrainEntry {
            since_unix: since,
            prepend: 2,
            withdraw_at_unix: Some(since + 30),
        }
    }

    #[test]
    fn saved_state_loads_back_with_mode_0644_and_no_leftovers() {
        let dir = scratch("roundtrip");
        let path = dir.join("sub/drain.json");
        assert_eq!(load(&path).unwrap(), None);
        let state = DrainState {
            all: Some(entry(100)),
            services: BTreeMap::from([("dns".to_owned(), entry(200))]),
        };
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state.clone()));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let text = fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["services"]["dns"]["prepend"], 2);
        // Undrained: all null, no services; and no temporary file left behind.
        save(&path, &DrainState::default()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(DrainState::default()));
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["drain.json"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_or_unknown_files_start_drained_everything() {
        let dir = scratch("corrupt");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("drain.json");
        for text in [
            "{\"version\":1,\"all\":",
            "{\"version\":2,\"all\":null,\"services\":{}}",
            "{\"all\":null}",
            "{\"version\":1,\"all\":{\"since_unix\":\"yesterday\"}}",
            "",
        ] {
            fs::write(&path, text).unwrap();
            assert!(load(&path).is_err(), "{text:?}");
            let state = load_at_start(&path, 3, &BTreeSet::new(), 1234);
            assert_eq!(
                state.all,
                Some(DrainEntry {
                    since_unix: 1234,
                    prepend: 3,
                    withdraw_at_unix: None
                }),
                "{text:?}"
            );
        }
        // A directory where the file should be: unreadable, drained too.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(load(&path), Err(LoadError::Read { .. })));
        assert!(load_at_start(&path, 0, &BTreeSet::new(), 1).all.is_some());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_file_is_not_drained_and_unknown_services_are_kept() {
        let dir = scratch("services");
        let path = dir.join("drain.json");
        assert_eq!(
            load_at_start(&path, 0, &BTreeSet::new(), 1),
            DrainState::default()
        );
        let state = DrainState {
            all: None,
            services: BTreeMap::from([("dns".to_owned(), entry(5)), ("gone".to_owned(), entry(6))]),
        };
        save(&path, &state).unwrap();
        let configured = BTreeSet::from(["dns".to_owned()]);
        assert_eq!(load_at_start(&path, 0, &configured, 1), state);
        fs::remove_dir_all(dir).unwrap();
    }
}
