//! The boundary: every exported function runs its body through [`guard`], which turns
//! errors and panics into a status and the thread's last error message.

use std::panic::{self, AssertUnwindSafe};

use crate::status::{ApiError, Status, set_last_error};

/// Runs `body`, catching panics, and returns its status; sets the thread's last error
/// message to the error's message, or to "" on success.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), ApiError>) -> Status {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last_error("");
            Status::Ok
        }
        Ok(Err(err)) => {
            set_last_error(&err.message);
            err.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            // Dropping a panic payload can itself panic; keep it from unwinding into C.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
            set_last_error(&format!("internal error in jitcache (a bug): {what}"));
            Status::Panic
        }
    }
}
