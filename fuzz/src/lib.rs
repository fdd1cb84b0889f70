//! The fuzz targets' bodies, one function each (the binaries in
//! `fuzz_targets/` hand libFuzzer's input to them). Each feeds arbitrary
//! bytes to a parser of something that crosses a boundary and checks what
//! must hold whatever the bytes: no panic, no allocation past the frame
//! limit (`Guard`, the global allocator), and the target's own
//! invariants. `build/fuzz.sh` builds and runs them; `make fuzz` for as
//! long as asked.
//!
//! - `frame`: a daemon's or a server's byte stream cut into frames; the
//!   request and response heads in them.
//! - `exchange`: the server's side of one request (`daemon::exchange`)
//!   fed a daemon's bytes in arbitrary pieces.
//! - `handoff`: what a daemon reads after exec.
//! - `environ`: a request head as the daemon decodes it, then its headers'
//!   environ keys and its path split at the mount point, as environ is built.
//! - `headers`: the status and header rules for an app's (or a daemon's)
//!   response.
//! - `inflate`: a gzip request body, with its size limit.
//! - `input`: `wsgi.input` reads of every kind over a body whose
//!   Content-Length may lie.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;

use oxwsgi_core::daemon::process::handoff::Handoff;
use oxwsgi_core::daemon::protocol::exchange::Exchange;
use oxwsgi_core::daemon::protocol::frame::{self, MAX_FRAME};

/// Aborts on any single allocation larger than a frame may be: whatever
/// the input claims, a parser allocates no more than the protocol allows.
struct Guard;

/// The largest allocation any target may make: a whole frame and its
/// header, with room for a buffer's growth around it.
const LARGEST: usize = MAX_FRAME + (1 << 20);

// SAFETY: every call is passed to the system allocator unchanged; the
// guard only refuses (aborts) before calling it.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn check(size: usize) {
    if size > LARGEST {
        // No allocation (or panic machinery) past this point.
        let msg = b"oxwsgi-fuzz: an allocation past the frame limit\n";
        // SAFETY: writes a static buffer to standard error, then aborts.
        unsafe {
            libc_write(2, msg.as_ptr(), msg.len());
        }
        std::process::abort();
    }
}

unsafe extern "C" {
    #[link_name = "write"]
    fn libc_write(fd: i32, buf: *const u8, len: usize) -> isize;
}

#[global_allocator]
static GUARD: Guard = Guard;

/// Bytes as frames, until they run out or one is refused; each head
/// payload decoded both ways.
pub fn frame(data: &[u8]) {
    let mut r = data;
    let mut buf = Vec::new();
    while let Ok(kind) = frame::read(&mut r, &mut buf) {
        assert!(buf.len() <= MAX_FRAME);
        let _ = kind;
        if let Ok(head) = frame::decode_head(&buf) {
            assert_eq!(head.request.chunked, head.body == frame::BodyKind::Chunked);
        }
        if let Ok(head) = frame::decode_response_head(&buf) {
            assert!((200..=599).contains(&head.status));
        }
    }
}

/// A daemon's bytes into one exchange, in pieces of the size the first
/// byte says; its events until it wants more or refuses.
pub fn exchange(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(first).max(1);
    let mut x = Exchange::new(8192).for_head_request(first & 1 == 1);
    let mut started = false;
    'feed: for piece in rest.chunks(step) {
        let mut piece = piece;
        while !piece.is_empty() {
            let room = x.buffer();
            assert!(room.len() <= MAX_FRAME + frame::HEADER + 1);
            let n = room.len().min(piece.len());
            room[..n].copy_from_slice(&piece[..n]);
            x.filled(n);
            piece = &piece[n..];
            loop {
                match x.next_event() {
                    Ok(Some(e)) => {
                        use oxwsgi_core::daemon::protocol::exchange::Event;
                        match e {
                            Event::Read(n) => assert!(n <= frame::MAX_READ),
                            Event::Start(h) => {
                                assert!(!started, "two heads");
                                started = true;
                                for (i, (name, value)) in h.headers.iter().enumerate() {
                                    assert!(
                                        oxwsgi_core::response::check_header(i, name, value).is_ok()
                                    );
                                }
                            }
                            Event::Error(s) => assert!((400..=599).contains(&s)),
                            _ => {}
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        assert!(!x.reusable(), "a failed exchange is never reused");
                        break 'feed;
                    }
                }
            }
        }
    }
    let _ = x.lost(first & 2 == 2, first & 4 == 4);
}

/// A handoff: decoded, and what decodes encodes back to the same.
pub fn handoff(data: &[u8]) {
    if let Ok(h) = Handoff::decode(data) {
        assert_eq!(Handoff::decode(&h.encode()).ok().as_ref(), Some(&h));
    }
}

/// A request head as a daemon decodes it, then what environ makes of it:
/// each header's key, the path decoded and split at the mount point.
pub fn environ(data: &[u8]) {
    use oxwsgi_core::request::environ::{
        HeaderKey, header_key, normalize_mount, percent_decode, split_mount,
    };
    let Ok(head) = frame::decode_head(data) else {
        // Not a head: the bytes as a header name and a path.
        let _ = header_key(data);
        let decoded = percent_decode(data);
        assert!(decoded.len() <= data.len());
        return;
    };
    let req = &head.request;
    for (name, _) in &req.headers {
        if let HeaderKey::Http(key) = header_key(name) {
            assert!(key.starts_with("HTTP_") && key != "HTTP_PROXY", "{key}");
            assert!(key.bytes().all(|b| b.is_ascii_graphic()));
        }
    }
    if let frame::AppRef::Named { mount, .. } = &head.app {
        let mount = normalize_mount(mount);
        let path = percent_decode(&req.uri);
        let (script, info) = split_mount(mount.as_bytes(), &path);
        // SCRIPT_NAME + PATH_INFO is the decoded path, whatever the mount.
        assert_eq!([script, info].concat(), path);
        assert!(info.is_empty() || info[0] == b'/' || script.is_empty());
    }
}

/// A status line and headers, split where the input has NULs.
pub fn headers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    if let Some(Ok(code)) = parts.next().map(oxwsgi_core::response::parse_status) {
        assert!((200..=599).contains(&code));
    }
    let rest: Vec<&str> = parts.collect();
    for (i, pair) in rest.chunks(2).enumerate() {
        let (name, value) = (pair[0], pair.get(1).copied().unwrap_or(""));
        if oxwsgi_core::response::check_header(i, name, value).is_ok() {
            assert!(!value.contains(['\r', '\n', '\0']));
            assert!(!name.is_empty());
        }
        if let Ok(n) = oxwsgi_core::response::parse_content_length(value) {
            assert_eq!(value.trim().parse::<u64>().ok(), Some(n));
        }
    }
}

/// A gzip request body: at most the limit comes out, whatever it claims.
pub fn inflate(data: &[u8]) {
    const MAX: u64 = 1 << 20;
    let source: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(data.to_vec()));
    if let Ok(out) = oxwsgi_core::response::gzip::inflate(source, MAX) {
        assert!(out.len() as u64 <= MAX);
    }
}

/// A body arriving in pieces, read by an app in every way `wsgi.input`
/// allows; the first bytes say the Content-Length (which may lie), the
/// pieces and the reads.
pub fn input(data: &[u8]) {
    use oxwsgi_core::request::input::BodyReader;
    use oxwsgi_core::request::{Body, BodyStream};
    if data.len() < 8 {
        return;
    }
    let (control, body) = data.split_at(8);
    let claimed = u32::from_le_bytes([control[0], control[1], control[2], control[3]]);
    let length = (control[4] & 1 == 1).then_some(u64::from(claimed));
    let piece = usize::from(control[5]).max(1);

    /// The body in pieces of `piece` bytes.
    struct Pieces {
        data: Vec<u8>,
        at: usize,
        piece: usize,
    }
    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.piece.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }
    impl BodyStream for Pieces {}

    let stream = Pieces {
        data: body.to_vec(),
        at: 0,
        piece,
    };
    let mut r = BodyReader::with_length(Body::Stream(Box::new(stream)), length);
    let mut got = 0usize;
    for op in control[6..].iter().chain(body.iter().take(64)) {
        let size = usize::from(*op) * 97;
        let out = match op % 4 {
            0 => r.read(Some(size)),
            1 => r.readline(Some(size)),
            2 => r.readline(None),
            _ => r.read(Some(usize::from(*op) << 16)),
        };
        match out {
            Ok(v) => got += v.len(),
            Err(_) => return,
        }
    }
    if let Ok(v) = r.read(None) {
        got += v.len();
    }
    assert!(got <= body.len(), "more came out than went in");
    if let Some(n) = length {
        assert!(got as u64 <= n, "more than the Content-Length");
    }
}
