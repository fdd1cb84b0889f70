//! What a server and a group's daemons say to each other: the frames and
//! the encoding of heads (`frame`), who may talk to a daemon (`auth`: the
//! peer's user, the group's token), and the server's side of one request
//! without I/O (`exchange`: what the daemon's bytes mean, read alike by
//! nginx's event loop and Apache's blocking proxy).

pub mod auth;
pub mod exchange;
pub mod frame;
