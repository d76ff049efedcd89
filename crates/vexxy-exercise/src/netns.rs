//! Running code on a thread that has joined a network namespace.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::ExerciseError;

/// Runs `f` on a new thread that first joins the network namespace at
/// `netns` (`None`: stays in the caller's), and returns its result.
///
/// `setns` moves only the calling thread, so every socket `f` creates lives
/// in that namespace while the rest of the process stays where it was; the
/// thread ends with `f`.
pub(crate) fn in_netns<T: Send>(
    netns: Option<&Path>,
    name: &str,
    f: impl FnOnce() -> T + Send,
) -> Result<T, ExerciseError> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn_scoped(scope, move || {
                if let Some(path) = netns {
                    enter(path)?;
                }
                Ok(f())
            })
            .map_err(|source| ExerciseError::Thread { source })?;
        handle.join().map_err(|_| ExerciseError::ThreadPanicked)?
    })
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &Path) -> Result<(), ExerciseError> {
    let err = |source| ExerciseError::NetNs {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(err)?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(|e| err(e.into()))?;
    tracing::debug!(netns = %path.display(), "joined network namespace");
    Ok(())
}
