//! `jitcache_add_unwinder`: an unwinder of the host that the linker cannot find by itself
//! (a copy linked into the executable with hidden symbols, as `-static-libgcc` makes).

use jitcache_rs::linker::unwind::{self, FrameFn, Unwinder, UnwinderKind};

use crate::boundary::guard;
use crate::status::{ApiError, Status};

/// `JITCACHE_UNWINDER_LIBGCC`: `__register_frame` takes a whole `.eh_frame` section.
const LIBGCC: i32 = 0;
/// `JITCACHE_UNWINDER_LLVM`: `__register_frame` takes one FDE (LLVM's libunwind).
const LLVM: i32 = 1;

/// `jitcache_add_unwinder`: units loaded from now on are registered with this unwinder
/// too. `JITCACHE_OK` also when it is one the linker already uses.
///
/// # Safety
///
/// `register` and `deregister` are NULL or the `__register_frame` and
/// `__deregister_frame` of one unwinder of the given kind, callable for the rest of the
/// process.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn jitcache_add_unwinder(
    register: Option<FrameFn>,
    deregister: Option<FrameFn>,
    kind: i32,
) -> Status {
    guard(|| {
        let register = register.ok_or_else(|| ApiError::null("register"))?;
        let deregister = deregister.ok_or_else(|| ApiError::null("deregister"))?;
        let kind = match kind {
            LIBGCC => UnwinderKind::Libgcc,
            LLVM => UnwinderKind::Llvm,
            other => {
                return Err(ApiError::invalid(format!(
                    "kind {other} is not a jitcache_unwinder_kind"
                )));
            }
        };
        // SAFETY: forwarded contract.
        unsafe {
            unwind::add_unwinder(Unwinder {
                register,
                deregister,
                kind,
            })
        };
        Ok(())
    })
}
