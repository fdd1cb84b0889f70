//! The response head and the PEP 3333 rules for it, as pure functions over
//! plain strings (the Python side extracts, these decide).
//!
//! Strings here are Python's: each character stands for one latin-1 byte.
//! Servers put them on the wire with `latin1`, never as UTF-8.
//!
//! The response side: `start_response` (and `write()`), the `responder`'s
//! state machine (headers, Content-Length, gzip, abort) over the server's
//! `sink` (`ResponseSink`, `Chunk`), `file_wrapper` (`wsgi.file_wrapper`),
//! and `gzip` (compression both ways).

pub mod file_wrapper;
pub mod gzip;
pub mod responder;
pub mod sink;
pub mod start_response;

use std::borrow::Cow;

/// A validated status line and header list, ready for a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The numeric status code.
    pub status: u16,
    /// The status line as the app gave it, `"200 OK"`.
    pub status_line: String,
    /// Headers in the app's order (names as given).
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The reason phrase after the code (may be empty).
    pub fn reason(&self) -> &str {
        self.status_line.get(4..).unwrap_or("")
    }

    /// Whether this status never carries a body, so that the message ends
    /// with its header block (1xx, 204, 304): bytes after it would be read
    /// as the next response on the connection.
    pub fn bodiless(&self) -> bool {
        matches!(self.status, 100..=199 | 204 | 304)
    }

    /// Whether the app's body must be dropped: the bodiless statuses, and
    /// 205 Reset Content, which has framing but must be empty.
    pub fn no_content(&self) -> bool {
        self.bodiless() || self.status == 205
    }

    /// The status line as it goes on the wire (latin-1, PEP 3333).
    pub fn status_line_bytes(&self) -> Cow<'_, [u8]> {
        latin1(&self.status_line)
    }
}

/// A PEP 3333 header string as the bytes it stands for: each character is
/// one latin-1 byte (checked before, so none is above U+00FF). Borrowed when
/// the text is ASCII, as nearly every header is.
pub fn latin1(s: &str) -> Cow<'_, [u8]> {
    if s.is_ascii() {
        Cow::Borrowed(s.as_bytes())
    } else {
        Cow::Owned(s.chars().map(|c| c as u32 as u8).collect())
    }
}

/// Headers that belong to the connection, not the response: PEP 3333 forbids
/// an app to set them (the server manages the connection and the framing).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// Checks a status string like `"200 OK"`; returns the code.
pub fn parse_status(status: &str) -> Result<u16, String> {
    let bytes = status.as_bytes();
    // The reason phrase is HTAB, SP, visible ASCII and obs-text (latin-1).
    let reason_char =
        |c: char| c == '\t' || (' '..='~').contains(&c) || ('\u{80}'..='\u{ff}').contains(&c);
    let well_formed = bytes.len() >= 4
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && bytes[3] == b' '
        && status[4..].chars().all(reason_char);
    if !well_formed {
        return Err(format!(
            "status must be a str like \"200 OK\" (3-digit code, a space, a reason phrase), got {status:?}"
        ));
    }
    let code: u16 = status[..3].parse().expect("three digits");
    if !(100..=599).contains(&code) {
        return Err(format!(
            "status code {code} is outside 100-599 in status {status:?}"
        ));
    }
    if code < 200 {
        return Err(format!(
            "status {status:?} is an interim (1xx) response: a WSGI application must \
             answer with a final status (200-599); the server sends 100 Continue itself"
        ));
    }
    Ok(code)
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks one response header (name and value already known to be `str`).
/// `index` is its position in the list, for the message.
pub fn check_header(index: usize, name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(format!(
            "response header {index}: name {name:?} is not a valid HTTP header name"
        ));
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(format!(
            "response header {index}: {name:?} is a hop-by-hop header, which a WSGI app \
             must not set (PEP 3333): the server manages the connection and framing"
        ));
    }
    if let Some(c) = value.chars().find(|&c| c as u32 > 0xff) {
        return Err(format!(
            "response header {name:?}: value contains {c:?}, which is not latin-1; \
             encode it (e.g. RFC 5987 / percent-encoding) before putting it in a header"
        ));
    }
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!(
            "response header {name:?}: value contains CR, LF or NUL (header injection)"
        ));
    }
    if let Some(c) = value.chars().find(|&c| c != '\t' && c.is_ascii_control()) {
        return Err(format!(
            "response header {name:?}: value contains the control character {c:?}, \
             which HTTP does not allow in a header"
        ));
    }
    Ok(())
}

/// Parses an app's Content-Length value.
pub fn parse_content_length(value: &str) -> Result<u64, String> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "response header Content-Length: {value:?} is not a number of bytes"
        ));
    }
    v.parse()
        .map_err(|_| format!("response header Content-Length: {value:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_statuses() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert_eq!(parse_status("404 Not Found"), Ok(404));
        assert_eq!(parse_status("599 "), Ok(599));
        assert_eq!(parse_status("299 Custom thing\twith tab"), Ok(299));
    }

    #[test]
    fn bad_statuses_name_the_format() {
        for bad in [
            "200",
            "200OK",
            "OK 200",
            "2000 OK",
            " 200 OK",
            "20 OK",
            "200 OK\r\nX: y",
        ] {
            let e = parse_status(bad).unwrap_err();
            assert!(e.contains("like \"200 OK\""), "{bad:?}: {e}");
        }
        assert!(
            parse_status("600 Nope")
                .unwrap_err()
                .contains("outside 100-599")
        );
        assert!(
            parse_status("099 Nope")
                .unwrap_err()
                .contains("outside 100-599")
        );
    }

    #[test]
    fn reason_phrases_may_be_latin1_and_interim_statuses_are_refused() {
        assert_eq!(parse_status("200 Tr\u{e8}s bien"), Ok(200));
        assert!(
            parse_status("200 \u{2603}")
                .unwrap_err()
                .contains("like \"200 OK\"")
        );
        assert!(parse_status("200 A\u{7f}").is_err());
        for interim in ["100 Continue", "101 Switching Protocols", "103 Early Hints"] {
            let e = parse_status(interim).unwrap_err();
            assert!(e.contains("interim (1xx)"), "{interim}: {e}");
        }
    }

    #[test]
    fn latin1_is_one_byte_per_character() {
        assert_eq!(&*latin1("plain"), b"plain");
        assert!(matches!(latin1("plain"), Cow::Borrowed(_)));
        assert_eq!(&*latin1("caf\u{e9}"), b"caf\xe9");
        assert_eq!(&*latin1("\u{ff}\u{80}"), b"\xff\x80");
        let head = ResponseHead {
            status: 200,
            status_line: "200 Tr\u{e8}s bien".into(),
            headers: vec![],
        };
        assert_eq!(&*head.status_line_bytes(), b"200 Tr\xe8s bien");
    }

    #[test]
    fn header_rules() {
        assert!(check_header(0, "Content-Type", "text/html; charset=utf-8").is_ok());
        assert!(check_header(0, "X-Latin", "caf\u{e9}").is_ok());
        let e = check_header(1, "Connection", "close").unwrap_err();
        assert!(e.contains("hop-by-hop"), "{e}");
        assert!(
            check_header(1, "transfer-encoding", "chunked")
                .unwrap_err()
                .contains("hop-by-hop")
        );
        assert!(
            check_header(0, "X-Snow", "\u{2603}")
                .unwrap_err()
                .contains("not latin-1")
        );
        assert!(
            check_header(0, "X-Inject", "a\r\nSet-Cookie: x")
                .unwrap_err()
                .contains("CR, LF")
        );
        assert!(
            check_header(2, "Bad Name", "x")
                .unwrap_err()
                .contains("header 2")
        );
        assert!(check_header(0, "", "x").is_err());
        assert!(check_header(0, "X-Tab", "a\tb").is_ok());
        for bad in ["a\u{1}b", "a\u{1b}[31m", "del\u{7f}"] {
            let e = check_header(0, "X-Ctl", bad).unwrap_err();
            assert!(e.contains("control character"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length("42"), Ok(42));
        assert_eq!(parse_content_length(" 7 "), Ok(7));
        assert!(parse_content_length("-1").is_err());
        assert!(parse_content_length("ten").is_err());
        assert!(parse_content_length("").is_err());
        assert!(parse_content_length("99999999999999999999999").is_err());
    }

    #[test]
    fn head_helpers() {
        let mut h = ResponseHead {
            status: 204,
            status_line: "204 No Content".into(),
            headers: vec![("X-A".into(), "1".into()), ("x-a".into(), "2".into())],
        };
        assert_eq!(h.header("X-a"), Some("1"));
        assert_eq!(h.reason(), "No Content");
        assert!(h.bodiless() && h.no_content());
        for (status, bodiless, no_content) in
            [(304, true, true), (205, false, true), (200, false, false)]
        {
            h.status = status;
            assert_eq!(
                (h.bodiless(), h.no_content()),
                (bodiless, no_content),
                "{status}"
            );
        }
        h.remove_header("X-A");
        assert!(h.headers.is_empty());
    }
}
