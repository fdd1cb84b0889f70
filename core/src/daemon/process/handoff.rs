//! What a daemon carries over when it becomes its virtualenv's own Python
//! (`exec`): the group's name and options as configured (parsed again on
//! the other side, by the same code), its apps, and the descriptors it
//! keeps (the group's socket, the metrics memory). Written to a memory file
//! whose descriptor the new program is given; the frame encoding's tagged
//! fields, so a field added later is one more tag.

use std::io;
use std::time::Duration;

use crate::app::{AppOptions, AppSource, AppSpec};
use crate::python::interpreter::Restrictions;

use crate::daemon::process::stderr_log::LogStyle;
use crate::daemon::protocol::auth::{Admission, Token};
use crate::daemon::protocol::frame::{field, fields};
use crate::daemon::spec::Mount;
use crate::daemon::sys::Pid;

/// A daemon's state at exec.
#[derive(Clone, Debug, PartialEq)]
pub struct Handoff {
    pub name: String,
    /// The group's option words (`GroupOptions::words`).
    pub words: Vec<String>,
    pub apps: Vec<AppOptions>,
    /// This daemon's maximum requests (the first generation's are spread).
    pub maximum_requests: Option<u64>,
    /// The process whose death ends the daemon.
    pub parent: Pid,
    /// The group's listening socket.
    pub listener: i32,
    /// The metrics memory: descriptor, mapping length, the region's offset.
    pub metrics: Option<(i32, usize, usize)>,
    pub log: LogStyle,
    /// Who the daemon serves.
    pub admission: Admission,
    /// The apps it may run (`None`: any the server names).
    pub mounts: Option<Vec<Mount>>,
    /// The group is Apache's (`GroupSpec::mod_wsgi`).
    pub mod_wsgi: bool,
    /// What its apps may not touch (the server's `WSGIRestrict*`).
    pub restrict: Restrictions,
}

/// A handoff as it is read, before its token is known.
struct Partial {
    name: String,
    words: Vec<String>,
    apps: Vec<AppOptions>,
    maximum_requests: Option<u64>,
    parent: Pid,
    listener: i32,
    metrics: Option<(i32, usize, usize)>,
    log: LogStyle,
    uids: Vec<u32>,
    mounts: Option<Vec<Mount>>,
    mod_wsgi: bool,
    restrict: Restrictions,
}

mod tag {
    pub const NAME: u8 = 1;
    pub const WORD: u8 = 2;
    /// Starts an app: `s` and a script's path, or `m` and a module; the app
    /// fields after it are that app's (a module named `x.wsgi` is no script).
    pub const APP: u8 = 3;
    pub const APP_CALLABLE: u8 = 4;
    pub const APP_MOUNT: u8 = 5;
    /// gzip, inflate, multithread, multiprocess, reload, import only: a
    /// byte each.
    pub const APP_FLAGS: u8 = 6;
    pub const APP_INFLATE_MAX: u8 = 7;
    pub const APP_REQUEST_TIMEOUT: u8 = 8;
    pub const APP_QUEUE_TIMEOUT: u8 = 9;
    pub const APP_QUEUE_STATUS: u8 = 10;
    pub const MAXIMUM_REQUESTS: u8 = 11;
    pub const PARENT: u8 = 12;
    pub const LISTENER: u8 = 13;
    pub const METRICS: u8 = 14;
    pub const LOG: u8 = 15;
    /// The group's token, then the users it admits.
    pub const TOKEN: u8 = 16;
    pub const PEER_UID: u8 = 17;
    /// The group runs only the mounts that follow (none: runs none).
    pub const MOUNTS: u8 = 18;
    /// One mount: target, callable and mount point, NUL-separated.
    pub const MOUNT: u8 = 19;
    /// The group is Apache's.
    pub const MOD_WSGI: u8 = 20;
    /// The application group of the app before it (absent: the main
    /// interpreter).
    pub const APP_GROUP: u8 = 21;
    /// `Restrictions`: stdin, stdout, signal, a byte each.
    pub const RESTRICT: u8 = 22;
}

fn num(out: &mut Vec<u8>, tag: u8, n: u64) {
    field(out, tag, n.to_string().as_bytes());
}

fn micros(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| d.as_micros() as u64)
}

impl Handoff {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        field(&mut out, tag::NAME, self.name.as_bytes());
        for w in &self.words {
            field(&mut out, tag::WORD, w.as_bytes());
        }
        for a in &self.apps {
            let source = match &a.spec.source {
                AppSource::Script(p) => [b"s", p.as_os_str().as_encoded_bytes()].concat(),
                AppSource::Module(m) => [b"m", m.as_bytes()].concat(),
            };
            field(&mut out, tag::APP, &source);
            field(&mut out, tag::APP_CALLABLE, a.spec.callable.as_bytes());
            field(&mut out, tag::APP_MOUNT, a.mount.as_bytes());
            let flags = [
                a.gzip,
                a.inflate_request,
                a.multithread,
                a.multiprocess,
                a.reload_on_change,
                a.import_only,
            ]
            .map(u8::from);
            field(&mut out, tag::APP_FLAGS, &flags);
            num(&mut out, tag::APP_INFLATE_MAX, a.inflate_max);
            num(
                &mut out,
                tag::APP_REQUEST_TIMEOUT,
                micros(a.request_timeout),
            );
            num(&mut out, tag::APP_QUEUE_TIMEOUT, micros(a.queue_timeout));
            num(
                &mut out,
                tag::APP_QUEUE_STATUS,
                a.queue_timeout_status.into(),
            );
            if !a.application_group.is_empty() {
                field(&mut out, tag::APP_GROUP, a.application_group.as_bytes());
            }
        }
        if let Some(n) = self.maximum_requests {
            num(&mut out, tag::MAXIMUM_REQUESTS, n);
        }
        num(&mut out, tag::PARENT, self.parent as u64);
        num(&mut out, tag::LISTENER, self.listener as u64);
        if let Some((fd, len, offset)) = self.metrics {
            field(
                &mut out,
                tag::METRICS,
                format!("{fd} {len} {offset}").as_bytes(),
            );
        }
        field(&mut out, tag::LOG, self.log.name().as_bytes());
        field(&mut out, tag::TOKEN, self.admission.token.as_bytes());
        for uid in &self.admission.uids {
            num(&mut out, tag::PEER_UID, (*uid).into());
        }
        if self.mod_wsgi {
            field(&mut out, tag::MOD_WSGI, b"");
        }
        let r = self.restrict;
        field(
            &mut out,
            tag::RESTRICT,
            &[r.stdin, r.stdout, r.signal].map(u8::from),
        );
        if let Some(mounts) = &self.mounts {
            field(&mut out, tag::MOUNTS, b"");
            for m in mounts {
                let v = [&m.target, &m.callable, &m.mount]
                    .map(|s| s.as_bytes())
                    .join(&0u8);
                field(&mut out, tag::MOUNT, &v);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> io::Result<Handoff> {
        let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let text = |v: &[u8]| {
            std::str::from_utf8(v)
                .map(str::to_string)
                .map_err(|_| bad("a handoff field is not UTF-8".into()))
        };
        let number = |v: &[u8]| -> io::Result<u64> {
            text(v)?
                .parse()
                .map_err(|_| bad("a handoff number is not a number".into()))
        };
        let duration = |v: &[u8]| -> io::Result<Option<Duration>> {
            Ok(Some(Duration::from_micros(number(v)?)).filter(|d| !d.is_zero()))
        };
        let mut h = Partial {
            name: String::new(),
            words: Vec::new(),
            apps: Vec::new(),
            maximum_requests: None,
            parent: 0,
            listener: -1,
            metrics: None,
            log: LogStyle::Nginx,
            uids: Vec::new(),
            mounts: None,
            mod_wsgi: false,
            restrict: Restrictions::default(),
        };
        let mut token = None;
        for f in fields(bytes) {
            let (t, v) = f?;
            if t == tag::APP {
                let source = match (v.first(), text(v.get(1..).unwrap_or_default())?) {
                    (Some(b's'), path) => AppSource::Script(path.into()),
                    (Some(b'm'), module) => AppSource::Module(module),
                    _ => return Err(bad("an app that is neither script nor module".into())),
                };
                h.apps.push(AppOptions::new(AppSpec {
                    source,
                    callable: "application".into(),
                }));
                continue;
            }
            if t == tag::APP_GROUP {
                let Some(a) = h.apps.last_mut() else {
                    return Err(bad("an app field before any app".into()));
                };
                a.application_group = text(v)?;
                continue;
            }
            if (tag::APP_CALLABLE..=tag::APP_QUEUE_STATUS).contains(&t) {
                let Some(a) = h.apps.last_mut() else {
                    return Err(bad("an app field before any app".into()));
                };
                match t {
                    tag::APP_CALLABLE => a.spec.callable = text(v)?,
                    tag::APP_MOUNT => a.mount = text(v)?,
                    tag::APP_FLAGS => {
                        let [gzip, inflate, thread, process, reload, import] = v else {
                            return Err(bad("app flags are six bytes".into()));
                        };
                        a.import_only = *import != 0;
                        a.gzip = *gzip != 0;
                        a.inflate_request = *inflate != 0;
                        a.multithread = *thread != 0;
                        a.multiprocess = *process != 0;
                        a.reload_on_change = *reload != 0;
                    }
                    tag::APP_INFLATE_MAX => a.inflate_max = number(v)?,
                    tag::APP_REQUEST_TIMEOUT => a.request_timeout = duration(v)?,
                    tag::APP_QUEUE_TIMEOUT => a.queue_timeout = duration(v)?,
                    _ => {
                        a.queue_timeout_status = u16::try_from(number(v)?)
                            .map_err(|_| bad("a queue timeout status past 65535".into()))?
                    }
                }
                continue;
            }
            match t {
                tag::NAME => h.name = text(v)?,
                tag::WORD => h.words.push(text(v)?),
                tag::MAXIMUM_REQUESTS => h.maximum_requests = Some(number(v)?),
                tag::PARENT => h.parent = number(v)? as Pid,
                tag::LISTENER => h.listener = number(v)? as i32,
                tag::METRICS => {
                    let t = text(v)?;
                    let n: Vec<u64> = t.split(' ').filter_map(|n| n.parse().ok()).collect();
                    let [fd, len, offset] = n[..] else {
                        return Err(bad(format!("metrics {t:?}: expected fd, length, offset")));
                    };
                    h.metrics = Some((fd as i32, len as usize, offset as usize));
                }
                tag::LOG => {
                    h.log = LogStyle::from_name(&text(v)?)
                        .ok_or_else(|| bad("an unknown log style".into()))?
                }
                tag::TOKEN => {
                    token = Some(
                        Token::from_bytes(v)
                            .ok_or_else(|| bad("a token of another size".into()))?,
                    )
                }
                tag::MOUNTS => h.mounts = Some(Vec::new()),
                tag::MOD_WSGI => h.mod_wsgi = true,
                tag::RESTRICT => {
                    let [stdin, stdout, signal] = v else {
                        return Err(bad("restrictions are three bytes".into()));
                    };
                    h.restrict = Restrictions {
                        stdin: *stdin != 0,
                        stdout: *stdout != 0,
                        signal: *signal != 0,
                    };
                }
                tag::MOUNT => {
                    let t = text(v)?;
                    let [target, callable, mount] = t.split('\0').collect::<Vec<_>>()[..] else {
                        return Err(bad("a mount is target, callable and mount point".into()));
                    };
                    h.mounts
                        .as_mut()
                        .ok_or_else(|| bad("a mount before the mounts".into()))?
                        .push(Mount {
                            target: target.into(),
                            callable: callable.into(),
                            mount: mount.into(),
                        });
                }
                tag::PEER_UID => h
                    .uids
                    .push(u32::try_from(number(v)?).map_err(|_| bad("a uid past 32 bits".into()))?),
                // A field from a newer oxwsgi: the same build runs both
                // sides, so this is a corrupted handoff.
                t => return Err(bad(format!("unknown handoff field {t}"))),
            }
        }
        if h.name.is_empty() || h.listener < 0 {
            return Err(bad("the handoff names no group or socket".into()));
        }
        let token = token.ok_or_else(|| bad("the handoff has no token".into()))?;
        Ok(Handoff {
            admission: Admission {
                group: h.name.clone(),
                token,
                uids: h.uids,
            },
            name: h.name,
            words: h.words,
            apps: h.apps,
            maximum_requests: h.maximum_requests,
            parent: h.parent,
            listener: h.listener,
            metrics: h.metrics,
            log: h.log,
            mounts: h.mounts,
            mod_wsgi: h.mod_wsgi,
            restrict: h.restrict,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_handoff_round_trips() {
        let mut script = AppOptions::new(AppSpec::parse("/srv/a/wsgi.py", Some("app")).unwrap());
        script.mount = "/a".into();
        script.application_group = "site|/a".into();
        script.gzip = true;
        script.multithread = false;
        script.request_timeout = Some(Duration::from_millis(1500));
        script.queue_timeout_status = 504;
        let module = AppOptions::new(AppSpec::parse("site.wsgi:app", None).unwrap());
        assert_eq!(module.spec.source, AppSource::Module("site.wsgi".into()));
        let h = Handoff {
            name: "site".into(),
            words: vec!["threads=4".into(), "python-path=/srv/a b:/srv/c".into()],
            apps: vec![script, module],
            maximum_requests: Some(250),
            parent: 4242,
            listener: 3,
            metrics: Some((5, 1 << 20, 4096)),
            log: LogStyle::Apache,
            admission: Admission {
                group: "site".into(),
                token: Token::from_bytes(&[7; Token::LEN]).unwrap(),
                uids: vec![0, 33],
            },
            mounts: Some(vec![Mount {
                target: "/srv/a/wsgi.py".into(),
                callable: "app".into(),
                mount: "/a".into(),
            }]),
            mod_wsgi: true,
            restrict: Restrictions {
                stdin: true,
                stdout: false,
                signal: false,
            },
        };
        let back = Handoff::decode(&h.encode()).unwrap();
        assert_eq!(back, h);
        let h = Handoff {
            apps: vec![],
            maximum_requests: None,
            metrics: None,
            log: LogStyle::Nginx,
            mounts: None,
            mod_wsgi: false,
            restrict: Restrictions::default(),
            ..h
        };
        assert_eq!(Handoff::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn a_broken_handoff_is_refused() {
        assert!(Handoff::decode(b"").is_err(), "no name, no socket");
        let mut b = Vec::new();
        field(&mut b, tag::APP_MOUNT, b"/x");
        assert!(Handoff::decode(&b).is_err(), "an app field before its app");
        let mut b = Vec::new();
        field(&mut b, tag::NAME, b"g");
        field(&mut b, tag::LISTENER, b"three");
        assert!(Handoff::decode(&b).is_err());
        let mut c = Vec::new();
        field(&mut c, tag::NAME, b"g");
        field(&mut c, tag::LISTENER, b"3");
        assert!(Handoff::decode(&c).is_err(), "no token");
        b.truncate(b.len() - 2);
        assert!(Handoff::decode(&b).is_err(), "truncated");
    }
}
