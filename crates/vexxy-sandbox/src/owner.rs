//! Records kept in a sandbox directory so that another vexxy process can
//! tell whether the owner is alive and tear the sandbox down if not.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::host::{Host, ProcessIdentity};

/// `owner.json`: written first, before anything else exists.
pub(crate) const OWNER_FILE: &str = "owner.json";
/// `init.json`: written once the runtime created the container.
pub(crate) const INIT_FILE: &str = "init.json";
/// Largest record we read.
const RECORD_LIMIT: u64 = 64 << 10;

/// Who owns a sandbox and which runtime state belongs to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OwnerRecord {
    pub(crate) pid: u32,
    pub(crate) starttime: u64,
    pub(crate) boot_id: String,
    pub(crate) runtime: PathBuf,
    pub(crate) runtime_root: PathBuf,
}

impl OwnerRecord {
    pub(crate) fn new(me: &ProcessIdentity, runtime: &Path, runtime_root: &Path) -> Self {
        Self {
            pid: me.pid,
            starttime: me.starttime,
            boot_id: me.boot_id.clone(),
            runtime: runtime.to_owned(),
            runtime_root: runtime_root.to_owned(),
        }
    }

    /// The owner still runs (same boot, same pid and start time).
    pub(crate) fn alive(&self, host: &dyn Host, me: &ProcessIdentity) -> bool {
        self.boot_id == me.boot_id && host.process_alive(self.pid, self.starttime)
    }
}

/// The container init as created by the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InitRecord {
    pub(crate) pid: u32,
    pub(crate) starttime: u64,
    pub(crate) pidns_inode: u64,
}

/// Writes `value` as JSON to `dir/name` atomically (temporary file + rename).
pub(crate) fn write_record<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, dir.join(name))
}

/// Reads `dir/name`; `Ok(None)` when it does not exist.
pub(crate) fn read_record<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    name: &str,
) -> io::Result<Option<T>> {
    let path = dir.join(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !meta.is_file() || meta.len() > RECORD_LIMIT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a small regular file", path.display()),
        ));
    }
    let bytes = fs::read(&path)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let me = ProcessIdentity {
            pid: 7,
            starttime: 9,
            boot_id: "b".into(),
        };
        let rec = OwnerRecord::new(&me, Path::new("runc"), Path::new("/run/vexxy/runtime"));
        write_record(dir.path(), OWNER_FILE, &rec).expect("write");
        let back: OwnerRecord = read_record(dir.path(), OWNER_FILE)
            .expect("read")
            .expect("some");
        assert_eq!(back, rec);
        assert!(read_record::<InitRecord>(dir.path(), INIT_FILE)
            .expect("read")
            .is_none());
        fs::write(dir.path().join(INIT_FILE), "{").expect("write");
        assert!(read_record::<InitRecord>(dir.path(), INIT_FILE).is_err());
    }
}
