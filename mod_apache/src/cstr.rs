//! The C strings Apache hands over, as Rust bytes and text.

use std::ffi::{CStr, c_char};

/// # Safety
/// `p` is null or a NUL-terminated string that outlives the returned slice.
pub unsafe fn cstr_str(p: *const c_char) -> String {
    // SAFETY: as cstr_bytes, whose contract this is.
    String::from_utf8_lossy(unsafe { cstr_bytes(p) }).into_owned()
}

/// # Safety
/// `p` is null or a NUL-terminated string that outlives the returned slice.
pub unsafe fn cstr_bytes<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        &[]
    } else {
        // SAFETY: p is a NUL-terminated string that outlives the slice
        // (cstr_bytes' contract; null was handled above).
        unsafe { CStr::from_ptr(p).to_bytes() }
    }
}
