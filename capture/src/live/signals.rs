//! SIGINT/SIGTERM while [`super::run`] runs: the first sets the stop flag, one arriving while the
//! flag is already set exits the process at once; after `run` returns they terminate the process
//! as by default.
#![forbid(unsafe_code)]

use super::LiveError;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// Exit status when SIGINT/SIGTERM arrives while a stop is already under way.
const FORCED_EXIT_STATUS: i32 = 1;

/// The signals `run` handles.
const SIGNALS: [i32; 2] = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];

/// Signal ids that make SIGINT/SIGTERM terminate the process again after a `run` returned;
/// unregistered when the next `run` starts.
static AFTER_RUN: Mutex<Vec<signal_hook::SigId>> = Mutex::new(Vec::new());

/// Installs SIGINT/SIGTERM: the first sets `stop`, one arriving while `stop` is set exits.
pub(super) fn hook(stop: &Arc<AtomicBool>) -> Result<Vec<signal_hook::SigId>, LiveError> {
    {
        let mut after = AFTER_RUN.lock().unwrap_or_else(|p| p.into_inner());
        for id in after.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
    let mut ids = Vec::new();
    for sig in SIGNALS {
        // Registered first, so it runs before the flag is set: only a later signal exits.
        ids.push(
            signal_hook::flag::register_conditional_shutdown(
                sig,
                FORCED_EXIT_STATUS,
                Arc::clone(stop),
            )
            .map_err(LiveError::Signal)?,
        );
        ids.push(signal_hook::flag::register(sig, Arc::clone(stop)).map_err(LiveError::Signal)?);
    }
    Ok(ids)
}

/// Removes `run`'s handlers; SIGINT/SIGTERM terminate the process again as by default.
pub(super) fn unhook(ids: Vec<signal_hook::SigId>) {
    for id in ids {
        signal_hook::low_level::unregister(id);
    }
    let always = Arc::new(AtomicBool::new(true));
    let mut after = AFTER_RUN.lock().unwrap_or_else(|p| p.into_inner());
    for sig in SIGNALS {
        if let Ok(id) = signal_hook::flag::register_conditional_default(sig, Arc::clone(&always)) {
            after.push(id);
        }
    }
}
