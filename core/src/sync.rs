//! Locks that outlive a panic. A panic in one request is caught at the
//! entry guard; it must not leave a poisoned mutex that fails every later
//! request. The data behind oxwsgi's locks is consistent whenever a lock is
//! released (no update spans an unlock), so a poisoned guard is taken as is.

use std::sync::{LockResult, PoisonError};

/// `.recover()` on what `lock()`, `wait()`, `read()` and `write()` return.
pub trait Recover<G> {
    /// The guard, poisoned or not.
    fn recover(self) -> G;
}

impl<G> Recover<G> for LockResult<G> {
    #[inline]
    fn recover(self) -> G {
        self.unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Recover;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let m = Arc::new(Mutex::new(7));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().recover();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*m.lock().recover(), 7);
    }
}
