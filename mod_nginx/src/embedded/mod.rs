//! Apps in nginx's workers: each worker's interpreter, its Python threads,
//! and the eventfd through which they wake the event loop (`worker`).

pub mod worker;
