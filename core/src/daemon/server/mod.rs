//! The server's side of its groups: the daemons of a group forked from the
//! server's parent, replaced when they die, stopped with it (`group`); a
//! process that owns them where the server's master reaps every child
//! itself (`manager`, nginx); where a group's socket is made (`listen`);
//! what its daemons' user can open, checked with the configuration
//! (`reach`); and requests sent with blocking I/O over pooled connections
//! (`proxy`, Apache).

pub mod group;
pub mod listen;
pub mod manager;
pub mod proxy;
pub mod reach;
