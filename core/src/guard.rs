//! The one door from a server into Rust: every `extern "C"` entry point of
//! both modules runs its body through `entry`, which stops a panic at the
//! boundary (unwinding into C is undefined behaviour), logs it with the
//! entry's name and the panic's message, and returns the server's error
//! value for that entry (500, NGX_ERROR, a directive's error text...).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `body`; a panic becomes `fallback` and one error line naming `name`.
pub fn entry<T>(name: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(panic) => {
            log::error!(
                target: "oxwsgi",
                "internal error (panic) in {name}: {}",
                panic_message(&*panic)
            );
            fallback
        }
    }
}

/// The text a panic was raised with.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Test builds only: panics the first time `name` is reached in this
/// process when the environment's `OXWSGI_FAILPOINT` names it, so the
/// end-to-end tests can check that each kind of entry survives a panic.
/// Release builds compile it to nothing.
#[inline]
pub fn failpoint(name: &str) {
    #[cfg(debug_assertions)]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static FIRED: AtomicBool = AtomicBool::new(false);
        if std::env::var("OXWSGI_FAILPOINT").is_ok_and(|v| v == name)
            && !FIRED.swap(true, Ordering::Relaxed)
        {
            panic!("failpoint {name}");
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_fallback() {
        assert_eq!(entry("a test entry", 500, || panic!("boom")), 500);
        assert_eq!(entry("a test entry", 500, || 200), 200);
        let owned = catch_unwind(|| panic!("{} {}", "owned", 1)).unwrap_err();
        assert_eq!(panic_message(&*owned), "owned 1");
        let fixed = catch_unwind(|| panic!("fixed")).unwrap_err();
        assert_eq!(panic_message(&*fixed), "fixed");
    }
}
