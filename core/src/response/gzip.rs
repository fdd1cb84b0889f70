//! gzip both ways: response compression (negotiation, eligibility, a streaming
//! encoder that flushes per chunk) and request inflation with a hard limit.

use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::response::ResponseHead;

/// Bodies shorter than this are not worth the gzip header and CPU.
pub const MIN_LENGTH: u64 = 256;

/// Whether an `Accept-Encoding` value lets us send gzip. Honours q-values: an
/// explicit `gzip;q=0` refuses it even when `*` would allow it.
pub fn accepts_gzip(accept_encoding: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(accept_encoding) else {
        return false;
    };
    let mut gzip_q: Option<f32> = None;
    let mut star_q: Option<f32> = None;
    for item in text.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let mut q = 1.0f32;
        for p in parts {
            let p = p.trim();
            if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip_q = Some(gzip_q.map_or(q, |old: f32| old.max(q)));
        } else if coding == "*" {
            star_q = Some(q);
        }
    }
    match gzip_q {
        Some(q) => q > 0.0,
        None => star_q.is_some_and(|q| q > 0.0),
    }
}

/// Whether a media type compresses well (text, JSON, XML, JavaScript, SVG...).
pub fn compressible(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("text/") {
        return true;
    }
    matches!(
        mime.as_str(),
        "application/json"
            | "application/javascript"
            | "application/x-javascript"
            | "application/ecmascript"
            | "application/xml"
            | "application/xhtml+xml"
            | "application/rss+xml"
            | "application/atom+xml"
            | "application/ld+json"
            | "application/manifest+json"
            | "application/wasm"
            | "image/svg+xml"
            | "image/x-icon"
    ) || mime.ends_with("+json")
        || mime.ends_with("+xml")
}

/// What to do with one response, decided when its headers go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not a candidate: leave the response alone.
    Skip,
    /// A candidate, but this client does not take gzip: add `Vary` only, so
    /// caches keep the two variants apart.
    VaryOnly,
    /// Compress it (and add `Vary`).
    Compress,
}

/// Decides for a response whose body length is `known_len` (when known).
pub fn decide(head: &ResponseHead, known_len: Option<u64>, client_accepts: bool) -> Decision {
    if head.no_content() {
        return Decision::Skip;
    }
    if head.has_header("Content-Encoding") {
        return Decision::Skip;
    }
    let Some(ct) = head.header("Content-Type") else {
        return Decision::Skip;
    };
    if !compressible(ct) {
        return Decision::Skip;
    }
    if let Some(range) = head.header("Content-Range") {
        // A byte range of the identity body must not be re-encoded.
        if !range.is_empty() {
            return Decision::Skip;
        }
    }
    if known_len.is_some_and(|n| n < MIN_LENGTH) {
        return Decision::Skip;
    }
    if client_accepts {
        Decision::Compress
    } else {
        Decision::VaryOnly
    }
}

/// Adds `Accept-Encoding` to the response's `Vary`, unless it is there already.
pub fn add_vary(head: &mut ResponseHead) {
    let mut has_vary = false;
    for (name, value) in head.headers.iter_mut() {
        if !name.eq_ignore_ascii_case("Vary") {
            continue;
        }
        has_vary = true;
        let present = value
            .split(',')
            .any(|v| v.trim() == "*" || v.trim().eq_ignore_ascii_case("accept-encoding"));
        if !present {
            value.push_str(", Accept-Encoding");
        }
        break;
    }
    if !has_vary {
        head.headers.push(("Vary".into(), "Accept-Encoding".into()));
    }
}

/// Rewrites the head of a response that will be compressed.
pub fn mark_compressed(head: &mut ResponseHead) {
    head.remove_header("Content-Length");
    // A strong validator of the identity body is not one of the gzip body.
    for (name, value) in head.headers.iter_mut() {
        if name.eq_ignore_ascii_case("ETag") && !value.starts_with("W/") {
            *value = format!("W/{value}");
        }
    }
    head.headers
        .push(("Content-Encoding".into(), "gzip".into()));
    add_vary(head);
}

/// A gzip stream fed chunk by chunk; each `push` returns bytes the client can
/// decompress up to that point (a sync flush), so streaming stays streaming.
pub struct Encoder {
    inner: GzEncoder<Vec<u8>>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            inner: GzEncoder::new(Vec::with_capacity(8 * 1024), Compression::new(6)),
        }
    }

    /// Compresses `data`; with `flush`, everything so far becomes decodable.
    pub fn push(&mut self, data: &[u8], flush: bool) -> Vec<u8> {
        self.inner
            .write_all(data)
            .expect("writing to a Vec cannot fail");
        if flush {
            self.inner.flush().expect("flushing to a Vec cannot fail");
        }
        std::mem::take(self.inner.get_mut())
    }

    /// Ends the stream (the gzip trailer).
    pub fn finish(self) -> Vec<u8> {
        self.inner.finish().expect("finishing to a Vec cannot fail")
    }
}

/// Compresses a whole body at once.
pub fn compress_all<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    compress_with(Encoder::new(), parts)
}

/// Compresses the rest of a body with `enc` and ends the stream.
pub fn compress_with<'a>(mut enc: Encoder, parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&enc.push(p, false));
    }
    out.extend_from_slice(&enc.finish());
    out
}

/// Why a gzip request body was refused.
#[derive(Debug)]
pub enum InflateError {
    /// Inflates to more than the configured maximum (413).
    TooLarge { max: u64 },
    /// Not valid gzip data (400).
    Corrupt(io::Error),
    /// Reading the compressed body from the client failed.
    Read(io::Error),
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InflateError::TooLarge { max } => {
                write!(f, "gzip request body inflates to more than {max} bytes")
            }
            InflateError::Corrupt(e) => write!(f, "gzip request body is not valid gzip: {e}"),
            InflateError::Read(e) => write!(f, "reading the request body failed: {e}"),
        }
    }
}

/// Inflates a gzip request body, refusing to produce more than `max` bytes.
/// Memory use is bounded by `max` whatever the compression ratio.
pub fn inflate(source: Box<dyn Read + Send>, max: u64) -> Result<Vec<u8>, InflateError> {
    let mut counted = ReadErrors {
        inner: source,
        failed: None,
    };
    let mut out = Vec::new();
    let result = {
        let decoder = MultiGzDecoder::new(&mut counted);
        decoder.take(max + 1).read_to_end(&mut out)
    };
    if let Some(e) = counted.failed.take() {
        return Err(InflateError::Read(e));
    }
    match result {
        Ok(_) if out.len() as u64 > max => Err(InflateError::TooLarge { max }),
        Ok(_) => Ok(out),
        Err(e) => Err(InflateError::Corrupt(e)),
    }
}

/// Tells read errors of the source apart from decoding errors.
struct ReadErrors {
    inner: Box<dyn Read + Send>,
    failed: Option<io::Error>,
}

impl Read for ReadErrors {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.failed = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;

    fn head(headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            status: 200,
            status_line: "200 OK".into(),
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn accept_encoding_negotiation() {
        assert!(accepts_gzip(b"gzip"));
        assert!(accepts_gzip(b"gzip, deflate, br"));
        assert!(accepts_gzip(b"deflate, GZIP;q=0.5"));
        assert!(accepts_gzip(b"x-gzip"));
        assert!(accepts_gzip(b"*"));
        assert!(!accepts_gzip(b""));
        assert!(!accepts_gzip(b"br, deflate"));
        assert!(!accepts_gzip(b"gzip;q=0"));
        assert!(!accepts_gzip(b"gzip; q=0.0, deflate"));
        assert!(!accepts_gzip(b"*, gzip;q=0"));
        assert!(!accepts_gzip(b"*;q=0"));
        assert!(!accepts_gzip(b"identity"));
    }

    #[test]
    fn compressible_types() {
        assert!(compressible("text/html; charset=utf-8"));
        assert!(compressible("application/json"));
        assert!(compressible("application/vnd.api+json"));
        assert!(compressible("image/svg+xml"));
        assert!(!compressible("image/png"));
        assert!(!compressible("application/octet-stream"));
        assert!(!compressible("application/zip"));
    }

    #[test]
    fn decisions() {
        let html = head(&[("Content-Type", "text/html")]);
        assert_eq!(decide(&html, None, true), Decision::Compress);
        assert_eq!(decide(&html, Some(10_000), true), Decision::Compress);
        assert_eq!(decide(&html, Some(10), true), Decision::Skip);
        assert_eq!(decide(&html, None, false), Decision::VaryOnly);
        let png = head(&[("Content-Type", "image/png")]);
        assert_eq!(decide(&png, None, true), Decision::Skip);
        let encoded = head(&[("Content-Type", "text/html"), ("Content-Encoding", "br")]);
        assert_eq!(decide(&encoded, None, true), Decision::Skip);
        let untyped = head(&[]);
        assert_eq!(decide(&untyped, None, true), Decision::Skip);
        let mut no_content = head(&[("Content-Type", "text/html")]);
        no_content.status = 204;
        assert_eq!(decide(&no_content, None, true), Decision::Skip);
    }

    #[test]
    fn vary_is_merged_not_duplicated() {
        let mut h = head(&[("Vary", "Cookie")]);
        add_vary(&mut h);
        assert_eq!(h.header("Vary"), Some("Cookie, Accept-Encoding"));
        add_vary(&mut h);
        assert_eq!(h.header("Vary"), Some("Cookie, Accept-Encoding"));
        let mut h = head(&[]);
        add_vary(&mut h);
        assert_eq!(h.header("Vary"), Some("Accept-Encoding"));
    }

    #[test]
    fn marking_drops_length_and_weakens_etag() {
        let mut h = head(&[("Content-Length", "900"), ("ETag", "\"abc\"")]);
        mark_compressed(&mut h);
        assert_eq!(h.header("Content-Length"), None);
        assert_eq!(h.header("Content-Encoding"), Some("gzip"));
        assert_eq!(h.header("ETag"), Some("W/\"abc\""));
        assert_eq!(h.header("Vary"), Some("Accept-Encoding"));
    }

    #[test]
    fn streaming_encoder_is_decodable_after_each_flush() {
        let mut enc = Encoder::new();
        let first = enc.push(b"hello ", true);
        // A sync flush makes the first part decodable on its own.
        let mut partial = Vec::new();
        let _ = GzDecoder::new(&first[..]).read_to_end(&mut partial);
        assert_eq!(partial, b"hello ");
        let mut all = first;
        all.extend(enc.push(b"world", true));
        all.extend(enc.finish());
        assert_eq!(gunzip(&all), b"hello world");
    }

    #[test]
    fn compress_all_round_trips() {
        let body = compress_all([&b"a"[..], &b"bc"[..]]);
        assert_eq!(gunzip(&body), b"abc");
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        compress_all([data])
    }

    #[test]
    fn inflate_within_limit() {
        let body = gz(b"x=1&y=2");
        let out = inflate(Box::new(io::Cursor::new(body)), 100).unwrap();
        assert_eq!(out, b"x=1&y=2");
    }

    #[test]
    fn inflate_exactly_at_limit_is_fine() {
        let body = gz(&[b'a'; 100]);
        assert_eq!(
            inflate(Box::new(io::Cursor::new(body)), 100).unwrap().len(),
            100
        );
    }

    #[test]
    fn zip_bomb_is_refused_with_bounded_memory() {
        // 64 MiB of zeros compresses to ~64 KiB; the limit stops inflation at 1 MiB.
        let zeros = vec![0u8; 64 << 20];
        let bomb = gz(&zeros);
        assert!(bomb.len() < 256 * 1024);
        match inflate(Box::new(io::Cursor::new(bomb)), 1 << 20) {
            Err(InflateError::TooLarge { max }) => assert_eq!(max, 1 << 20),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn corrupt_gzip_is_reported() {
        match inflate(Box::new(io::Cursor::new(b"not gzip at all".to_vec())), 100) {
            Err(InflateError::Corrupt(_)) => {}
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn concatenated_members_inflate_whole() {
        let mut body = gz(b"abc");
        body.extend(gz(b"def"));
        assert_eq!(
            inflate(Box::new(io::Cursor::new(body)), 100).unwrap(),
            b"abcdef"
        );
    }
}
