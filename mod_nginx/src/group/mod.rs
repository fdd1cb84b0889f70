//! Process groups on nginx: the master starts the groups' manager for each
//! configuration it loads (`master`: the master's side, and where the
//! groups' sockets are), and a `wsgi_process_group` request goes to
//! its group's daemon driven by the event loop, never a blocking call
//! (`proxy`, the core's daemon protocol), over connections a worker keeps
//! between requests (`pool`), into the same `output` as an embedded app.

pub mod master;
pub mod pool;
pub mod proxy;
