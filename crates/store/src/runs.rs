//! Runs in progress. Each `berth run` works in a scratch directory
//! `tmp/run-…` that it makes under the shared gc lock and holds an
//! exclusive `flock` on for as long as it lives (the lock goes with the
//! process and its forks, however they end); there it names, in `layers`,
//! the layers it mounts. `gc` leaves a locked scratch directory alone and
//! `gc` and `rmi` keep every layer a locked one names; an unlocked one is
//! stale and goes.

use crate::{ImageRecord, Store, StoreError};
use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

const PREFIX: &str = "run-";
const LAYERS: &str = "layers";

/// A run's hold on its scratch directory; dropping it lets `gc` take it.
#[derive(Debug)]
pub struct RunHold {
    _fd: OwnedFd,
}

fn open_dir(p: &Path) -> Result<OwnedFd, StoreError> {
    rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty())
        .map_err(|e| StoreError::io(format!("opening {}", p.display()), e.into()))
}

impl Store {
    /// Makes a run's scratch directory `tmp/run-ID` and holds it.
    pub fn new_run_dir(&self, id: &str) -> Result<(PathBuf, RunHold), StoreError> {
        let _gc = self.lock_shared("gc")?;
        let p = self.tmp_dir().join(format!("{PREFIX}{id}"));
        std::fs::create_dir(&p).map_err(|e| StoreError::io(format!("creating {}", p.display()), e))?;
        let fd = open_dir(&p)?;
        flock(&fd, FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| StoreError::io(format!("locking {}", p.display()), e.into()))?;
        Ok((p, RunHold { _fd: fd }))
    }

    /// The layer directories of `rec`, top first, recorded as in use by
    /// the run in `dir`: under the shared gc lock, so a gc either ran
    /// before (and a layer it took is reported missing) or sees the record.
    pub fn run_layers(&self, dir: &Path, rec: &ImageRecord) -> Result<Vec<PathBuf>, StoreError> {
        let _gc = self.lock_shared("gc")?;
        let names: String = rec.layers.iter().map(|l| format!("{}\n", l.diff_id.hex())).collect();
        let f = dir.join(LAYERS);
        std::fs::write(&f, names).map_err(|e| StoreError::io(format!("writing {}", f.display()), e))?;
        self.lower_dirs(rec)
    }

    /// Scratch directories of runs still alive. The caller holds the gc
    /// lock exclusively (no run is being made).
    pub(crate) fn live_runs(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(self.tmp_dir()) else { return Vec::new() };
        rd.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
            .map(|e| e.path())
            .filter(|p| {
                open_dir(p).is_ok_and(|fd| {
                    flock(&fd, FlockOperation::NonBlockingLockExclusive) == Err(rustix::io::Errno::WOULDBLOCK)
                })
            })
            .collect()
    }
}

/// The layers (diff_id hex) the runs with scratch directories `live` have
/// mounted.
pub(crate) fn layers_of(live: &[PathBuf]) -> HashSet<String> {
    live.iter()
        .filter_map(|d| std::fs::read_to_string(d.join(LAYERS)).ok())
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}
