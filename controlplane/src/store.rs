//! The embedded store: the whole [`State`] in one JSON file, replaced atomically.
//!
//! A save writes `state.json.tmp`, fsyncs it, renames it over `state.json` and fsyncs the
//! directory; only then is a change acknowledged. A crash at any point leaves either the old
//! or the new file, never a mix, so no acknowledged change is lost and nothing half-written
//! is ever read.

use crate::state::State;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creating) the data directory.
    pub fn open(dir: &Path) -> io::Result<Store> {
        fs::create_dir_all(dir)?;
        // A temporary file left by a crash mid-save was never acknowledged.
        let _ = fs::remove_file(dir.join("state.json.tmp"));
        Ok(Store { dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The stored state, or the empty state on first start.
    pub fn load(&self) -> io::Result<State> {
        match fs::read(self.path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.path().display()))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e),
        }
    }

    /// Durably replaces the stored state.
    pub fn save(&self, state: &State) -> io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
        proto::durable_file::write(&self.path(), &bytes)
    }
}
