//! Directive values both servers parse the same way: sizes, on/off flags,
//! thread counts, path lists, callable names. Each error says what was expected, so the
//! server can print it after the directive's name.

use std::path::PathBuf;
use std::time::Duration;

/// `on` / `off` (case-insensitive).
pub fn parse_flag(value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(format!(
            "invalid value \"{value}\": expected \"on\" or \"off\""
        ))
    }
}

/// A size in bytes with an optional `k`, `m` or `g` suffix (nginx style).
pub fn parse_size(value: &str) -> Result<u64, String> {
    let bad =
        || format!("invalid size \"{value}\": expected bytes with an optional k, m or g suffix");
    let v = value.trim();
    let (digits, shift) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 10),
        Some(b'm' | b'M') => (&v[..v.len() - 1], 20),
        Some(b'g' | b'G') => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// A time limit, nginx style: `30s`, `500ms`, `2m`, `1h30m`, a bare number
/// of seconds (mod_wsgi style), or `off` (`None`). Zero is refused: a limit
/// that fires at once is a mistake, and `off` says "none".
pub fn parse_timeout(value: &str) -> Result<Option<Duration>, String> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = || {
        format!(
            "invalid time \"{value}\": expected e.g. 30s, 500ms, 2m, 1h30m, a number of seconds, or off"
        )
    };
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = v.parse().map_err(|_| bad())?;
        return positive(Duration::from_secs(secs), value);
    }
    let mut total = Duration::ZERO;
    let mut rest = v;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_len = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || unit_len == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let ms_per = match &rest[digits..digits + unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        let ms = n.checked_mul(ms_per).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(bad)?;
        rest = &rest[digits + unit_len..];
    }
    positive(total, value)
}

fn positive(d: Duration, value: &str) -> Result<Option<Duration>, String> {
    if d.is_zero() {
        Err(format!(
            "invalid time \"{value}\": must be more than 0 (or off)"
        ))
    } else {
        Ok(Some(d))
    }
}

/// `N [jitter=M]`: recycle after N requests, plus 0 to M per process.
pub fn parse_max_requests(value: &str) -> Result<(u64, u64), String> {
    let mut words = value.split_whitespace();
    let count = |w: &str| w.parse::<u64>().ok().filter(|n| *n > 0);
    let n = words.next().and_then(count).ok_or_else(|| {
        format!(
            "invalid request count \"{value}\": expected a number above 0, then optionally jitter=N"
        )
    })?;
    let jitter = match words.next() {
        None => 0,
        Some(w) => w
            .strip_prefix("jitter=")
            .and_then(|j| j.parse::<u64>().ok())
            .ok_or_else(|| format!("invalid parameter \"{w}\": expected jitter=N"))?,
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected \"{extra}\""));
    }
    Ok((n, jitter))
}

/// A count of Python threads: 1 to 1024.
pub fn parse_threads(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid thread count \"{value}\": expected a number from 1 to 1024"
        )),
    }
}

/// A `:`-separated list of absolute directories.
pub fn parse_path_list(value: &str) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for part in value.split(':').filter(|p| !p.is_empty()) {
        if !part.starts_with('/') {
            return Err(format!("path \"{part}\" must be absolute"));
        }
        out.push(PathBuf::from(part));
    }
    if out.is_empty() {
        return Err("expected one or more absolute directories separated by \":\"".into());
    }
    Ok(out)
}

/// An absolute directory.
pub fn parse_dir(value: &str) -> Result<PathBuf, String> {
    if !value.starts_with('/') {
        return Err(format!("path \"{value}\" must be absolute"));
    }
    Ok(PathBuf::from(value))
}

/// A `python_home`: an absolute directory that is a virtualenv for the
/// embedded Python or a Python prefix. Checked when the configuration is
/// read, so a server's config test catches a broken venv before a reload.
pub fn parse_python_home(value: &str) -> Result<PathBuf, String> {
    let dir = parse_dir(value)?;
    crate::python::interpreter::inspect_home(&dir, crate::python::interpreter::embedded_version())
        .map_err(|e| e.0)?;
    Ok(dir)
}

/// The name of an app's callable (`wsgi_callable`, `WSGICallableObject`).
pub fn parse_callable(value: &str) -> Result<String, String> {
    if crate::app::is_identifier(value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "callable name {value:?} is not a Python identifier"
        ))
    }
}

/// The words of a directive's line as Apache splits them: by white space,
/// where a part in double or single quotes (anywhere in a word, as in
/// `display-name="my site"`) keeps its spaces and loses its quotes, and a
/// backslash inside quotes escapes the next character.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            if c != '"' && c != '\'' {
                word.push(c);
                continue;
            }
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated {c} in {line:?}")),
                    Some(q) if q == c => break,
                    Some('\\') => word.push(chars.next().unwrap_or('\\')),
                    Some(other) => word.push(other),
                }
            }
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callables() {
        assert_eq!(parse_callable("app"), Ok("app".to_string()));
        assert!(
            parse_callable("my-app")
                .unwrap_err()
                .contains("not a Python identifier")
        );
        assert!(parse_callable("").is_err());
    }

    #[test]
    fn flags() {
        assert_eq!(parse_flag("on"), Ok(true));
        assert_eq!(parse_flag("OFF"), Ok(false));
        assert!(parse_flag("yes").unwrap_err().contains("\"on\" or \"off\""));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("10k"), Ok(10 << 10));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        for bad in ["", "m", "-1", "1.5m", "10x", "99999999999999999999g"] {
            assert!(
                parse_size(bad).unwrap_err().contains("invalid size"),
                "{bad}"
            );
        }
    }

    #[test]
    fn timeouts() {
        let ms = |n| Ok(Some(Duration::from_millis(n)));
        assert_eq!(parse_timeout("30"), ms(30_000));
        assert_eq!(parse_timeout("30s"), ms(30_000));
        assert_eq!(parse_timeout("500ms"), ms(500));
        assert_eq!(parse_timeout("1h30m"), ms(5_400_000));
        assert_eq!(parse_timeout("1m1s"), ms(61_000));
        assert_eq!(parse_timeout("off"), Ok(None));
        for bad in [
            "",
            "0",
            "0s",
            "s",
            "5x",
            "1.5s",
            "-1",
            "10 s",
            "99999999999999999999d",
        ] {
            assert!(
                parse_timeout(bad).unwrap_err().contains("invalid time"),
                "{bad}"
            );
        }
    }

    #[test]
    fn max_requests() {
        assert_eq!(parse_max_requests("1000"), Ok((1000, 0)));
        assert_eq!(parse_max_requests("1000 jitter=50"), Ok((1000, 50)));
        assert!(parse_max_requests("0").unwrap_err().contains("above 0"));
        assert!(
            parse_max_requests("10 jitter")
                .unwrap_err()
                .contains("jitter=N")
        );
        assert!(parse_max_requests("10 jitter=-1").is_err());
        assert!(
            parse_max_requests("10 jitter=1 x")
                .unwrap_err()
                .contains("unexpected \"x\"")
        );
    }

    #[test]
    fn threads() {
        assert_eq!(parse_threads("4"), Ok(4));
        assert!(parse_threads("0").is_err());
        assert!(parse_threads("many").unwrap_err().contains("1 to 1024"));
    }

    #[test]
    fn path_lists() {
        assert_eq!(
            parse_path_list("/a:/b/c").unwrap(),
            vec![PathBuf::from("/a"), PathBuf::from("/b/c")]
        );
        assert!(
            parse_path_list("relative:/b")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(parse_path_list(":").is_err());
        assert!(parse_dir("venv").is_err());
    }

    #[test]
    fn words_split_as_apache_does() {
        assert_eq!(
            split_words(" a  b=c\td=\"x y\" 'e f' g=\"q\\\"q\"").unwrap(),
            vec!["a", "b=c", "d=x y", "e f", "g=q\"q"]
        );
        assert!(
            split_words("a=\"open")
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(split_words("   ").unwrap().is_empty());
    }
}
