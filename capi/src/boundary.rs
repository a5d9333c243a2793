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

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::guard;
    use crate::status::{ApiError, Status, last_error_ptr};

    fn last_error() -> String {
        // SAFETY: the pointer is this thread's message, valid until the next call on it.
        unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn an_error_sets_the_message_and_a_success_clears_it() {
        let status = guard(|| Err(ApiError::invalid("parts.name is not valid UTF-8")));
        assert_eq!(status, Status::InvalidArgument);
        assert_eq!(last_error(), "parts.name is not valid UTF-8");
        assert_eq!(guard(|| Ok(())), Status::Ok);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn a_panic_becomes_a_status_with_its_message() {
        assert_eq!(guard(|| panic!("boom {}", 42)), Status::Panic);
        assert!(last_error().contains("boom 42"), "{}", last_error());
        assert_eq!(guard(|| std::panic::panic_any(7_u8)), Status::Panic);
        assert!(last_error().contains("unknown panic"), "{}", last_error());
    }

    #[test]
    fn messages_are_per_thread_and_nul_safe() {
        guard(|| Err(ApiError::not_found("here")));
        std::thread::spawn(|| {
            assert_eq!(last_error(), "");
            guard(|| Err(ApiError::not_found("a\0b")));
            assert_eq!(last_error(), "a\\0b");
        })
        .join()
        .expect("thread");
        assert_eq!(last_error(), "here");
    }
}
