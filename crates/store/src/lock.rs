//! Advisory file locks (`flock`) on files under `ROOT/locks/`. The lock is
//! released when the guard drops or the process dies, so a killed berth
//! never leaves the store locked.

use crate::{Store, StoreError};
use rustix::fs::{flock, FlockOperation};
use std::fs::File;

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

impl Store {
    fn lock(&self, name: &str, op: FlockOperation) -> Result<LockGuard, StoreError> {
        let path = self.lock_path(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(format!("opening lock {}", path.display()), e))?;
        flock(&file, op).map_err(|e| StoreError::io(format!("locking {}", path.display()), e.into()))?;
        Ok(LockGuard { _file: file })
    }

    /// Shared lock on `name`: many holders at once.
    pub fn lock_shared(&self, name: &str) -> Result<LockGuard, StoreError> {
        self.lock(name, FlockOperation::LockShared)
    }

    /// Exclusive lock on `name` without waiting; `WouldBlock` when held.
    pub fn try_lock_exclusive(&self, name: &str) -> Result<LockGuard, StoreError> {
        self.lock(name, FlockOperation::NonBlockingLockExclusive)
    }

    /// Shared lock on `name` without waiting; `WouldBlock` when held exclusively.
    pub fn try_lock_shared(&self, name: &str) -> Result<LockGuard, StoreError> {
        self.lock(name, FlockOperation::NonBlockingLockShared)
    }

    /// Exclusive lock on `name`.
    pub fn lock_exclusive(&self, name: &str) -> Result<LockGuard, StoreError> {
        self.lock(name, FlockOperation::LockExclusive)
    }
}
