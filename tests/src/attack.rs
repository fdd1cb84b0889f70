//! An attacker on the same machine: a process that connects to a process
//! group's socket as some user and sends frames it wrote
//! itself (the daemon protocol's encoding, written here from its
//! documentation, not taken from the core), to show what a daemon does
//! with requests that do not come from the server.

use std::path::Path;
use std::process::Command;

/// What the daemon did with the attacker's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// connect() failed (the socket's mode or owner kept the user out).
    Refused(String),
    /// The daemon closed the connection; what it sent before.
    Closed(Vec<u8>),
    /// The connection stayed open for 8 s; what came meanwhile.
    Open(Vec<u8>),
}

const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused", e)
    sys.exit(0)
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
except OSError:
    pass
s.settimeout(8)
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            print("closed", out.hex())
            break
        out += b
except socket.timeout:
    print("open", out.hex())
except OSError:
    print("closed", out.hex())
"#;

/// Connects to `socket` as `user` (a name, or a number for a user that
/// has no name: uid and gid alike), sends `bytes`, and says what came of it.
pub fn send_as(user: &str, socket: &Path, bytes: &[u8]) -> Reply {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = as_user(user, "/usr/bin/python3")
        .args(["-c", CLIENT])
        .arg(socket)
        .arg(hex)
        .output()
        .expect("run the attacker's client");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (what, rest) = text.split_once(' ').unwrap_or((&text, ""));
    let bytes = || {
        (0..rest.len() / 2)
            .map(|i| u8::from_str_radix(&rest[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect()
    };
    match what {
        "refused" => Reply::Refused(rest.to_string()),
        "closed" => Reply::Closed(bytes()),
        "open" => Reply::Open(bytes()),
        _ => panic!(
            "the attacker's client failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// `program`, to be run as `user` (a name, or a number: uid and gid alike)
/// with no supplementary groups.
pub fn as_user(user: &str, program: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let (uid, gid) = match user.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => (id("-u", user), id("-g", user)),
    };
    let mut c = Command::new(program);
    // std drops the supplementary groups when root changes the uid.
    c.uid(uid).gid(gid);
    c
}

/// `id FLAG user` as a number.
fn id(flag: &str, user: &str) -> u32 {
    let out = Command::new("id").args([flag, user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("an id")
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn field(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// A request head naming a script of the attacker's choice, claiming an
/// authenticated user, TLS and a client address of its choice.
pub fn forged_head(script: &Path) -> Vec<u8> {
    let mut h = Vec::new();
    field(
        &mut h,
        13,
        script.to_str().expect("a UTF-8 path").as_bytes(),
    ); // the app's target
    field(&mut h, 15, b""); // its mount
    for (tag, v) in [
        (2u8, &b"GET"[..]),
        (3, b"/"),
        (4, b"/"),
        (5, b""),
        (6, b"HTTP/1.1"),
        (7, b"1"),
        (8, b"bank.example"),
        (9, b"443"),
        (10, b"10.1.2.3"),
        (11, b"4444"),
        (12, b"none"),
    ] {
        field(&mut h, tag, v);
    }
    field(&mut h, 22, b"REMOTE_USER");
    field(&mut h, 23, b"admin");
    frame(1, &h)
}

/// The introduction a new connection starts with, with `token`.
pub fn hello(token: &[u8]) -> Vec<u8> {
    frame(12, token)
}

/// What a daemon sends first on every connection of the server's user,
/// before it reads anything of it: `Accepted`.
pub fn accepted() -> Vec<u8> {
    frame(13, b"")
}

/// A WSGI script that leaves `marker` behind when it is loaded or run:
/// the proof that an attacker's request ran.
pub fn marker_script(dir: &Path, marker: &Path) -> std::path::PathBuf {
    let script = dir.join("attacker.py");
    std::fs::write(
        &script,
        format!(
            "open({m:?}, 'a').write('loaded\\n')\n\
             def application(environ, start_response):\n\
             \x20   open({m:?}, 'a').write('ran as %s\\n' % environ.get('REMOTE_USER'))\n\
             \x20   start_response('200 OK', [])\n\
             \x20   return [b'pwned']\n",
            m = marker.to_str().expect("a UTF-8 path")
        ),
    )
    .expect("write the attacker's script");
    script
}
