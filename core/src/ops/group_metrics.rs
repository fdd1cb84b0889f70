//! Each process group reports into a metrics region of its own, never
//! into the server's or another group's: a group's daemons run another
//! user's code, which must not read other groups' requests in flight (their
//! paths, their clients, their stacks) nor forge their figures. The
//! server's parent maps one region per group (anonymous shared memory,
//! made before its workers fork, so they see every region); a daemon maps
//! only its own (`GroupSpec::metrics`, passed on across exec), and a
//! forked daemon lets go of the others. The status page reads the server's
//! region and every group's, and labels what a group's region says with
//! that group's name, whatever its daemons wrote there.

use std::io;
use std::sync::Mutex;

use crate::ops::metrics::{AppSnapshot, HistogramSnapshot, Region, Snapshot};
use crate::sync::Recover;

/// The groups' regions this process knows, by group name.
static REGIONS: Mutex<Vec<(String, &'static Region)>> = Mutex::new(Vec::new());

/// Group `name`'s region: the one this process has, else a new one.
pub fn region_of(name: &str) -> io::Result<&'static Region> {
    let mut regions = REGIONS.lock().recover();
    if let Some((_, r)) = regions.iter().find(|(n, _)| n == name) {
        return Ok(r);
    }
    let r = new_region()?;
    regions.push((name.to_string(), r));
    Ok(r)
}

/// Takes `region` as group `name`'s: one the server kept across the reload
/// of its module (Apache's).
pub fn adopt(name: &str, region: &'static Region) {
    let mut regions = REGIONS.lock().recover();
    regions.retain(|(n, _)| n != name);
    regions.push((name.to_string(), region));
}

/// In a new daemon of group `own`: unmaps every other group's region (a
/// forked daemon inherited them all).
pub fn keep_only(own: &str) {
    let mut regions = REGIONS.lock().recover();
    for (name, r) in regions.iter() {
        if name != own {
            // SAFETY: the region was mapped by `new_region` (or adopted
            // from such a mapping), whole, at this address; nothing of this
            // new daemon refers to another group's region (its metrics
            // point at its own).
            unsafe {
                libc::munmap(
                    std::ptr::from_ref::<Region>(r).cast_mut().cast(),
                    Region::SIZE,
                )
            };
        }
    }
    regions.retain(|(n, _)| n == own);
}

/// A new zeroed shared mapping for a region (inherited by the processes
/// forked after, for the life of the process).
fn new_region() -> io::Result<&'static Region> {
    // SAFETY: a new anonymous shared mapping placed by the kernel; it is
    // unmapped only by `keep_only`, in a daemon that no longer uses it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            Region::SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping is page-aligned, Region::SIZE bytes, zero-filled
    // by the kernel, and a Region is nothing but atomics, for which zero
    // is a valid value; other processes change it only through atomics.
    let r = unsafe { &*p.cast::<Region>() };
    r.init();
    Ok(r)
}

/// The whole server as the status page shows it: `server`'s region and
/// every group's.
pub fn snapshot(server: &Region) -> Snapshot {
    let groups: Vec<(String, &'static Region)> = REGIONS.lock().recover().clone();
    let mut all = server.snapshot();
    for (name, region) in groups {
        merge(&mut all, &name, region.snapshot());
    }
    all
}

/// Adds group `name`'s figures to `all`, under its name whatever its
/// daemons wrote.
fn merge(all: &mut Snapshot, name: &str, mut g: Snapshot) {
    for p in &mut g.procs {
        p.group = name.to_string();
    }
    let mut recycles = vec![0u64; crate::ops::metrics::RecycleReason::ALL.len()];
    for s in &g.groups {
        for (why, n) in &s.recycles {
            recycles[*why as usize] += n;
        }
    }
    let processes = g.procs.len() as u64;
    all.groups.retain(|s| s.name != name);
    all.groups.push(crate::ops::metrics::GroupSnapshot {
        name: name.to_string(),
        processes,
        recycles: crate::ops::metrics::RecycleReason::ALL
            .iter()
            .map(|r| (*r, recycles[*r as usize]))
            .collect(),
    });
    all.procs.extend(g.procs);
    all.requests.extend(g.requests);
    all.requests.sort_by_key(|r| std::cmp::Reverse(r.elapsed));
    for app in g.apps {
        match all.apps.iter_mut().find(|a| a.name == app.name) {
            Some(a) => add_app(a, &app),
            None => all.apps.push(app),
        }
    }
}

fn add_app(a: &mut AppSnapshot, b: &AppSnapshot) {
    for (x, y) in a.responses.iter_mut().zip(b.responses) {
        *x += y;
    }
    add_histogram(&mut a.duration, &b.duration);
    add_histogram(&mut a.queue_wait, &b.queue_wait);
    a.in_flight += b.in_flight;
    a.queued += b.queued;
    a.exceptions += b.exceptions;
    a.request_timeouts += b.request_timeouts;
    a.queue_timeouts += b.queue_timeouts;
    a.bytes_in += b.bytes_in;
    a.bytes_out += b.bytes_out;
}

fn add_histogram(a: &mut HistogramSnapshot, b: &HistogramSnapshot) {
    for (x, y) in a.buckets.iter_mut().zip(b.buckets) {
        *x += y;
    }
    a.count += b.count;
    a.sum += b.sum;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A group's region holds what its daemons wrote and nothing of the
    /// server's; the page shows both, the group's under its own name.
    #[test]
    fn the_page_merges_every_groups_region_under_its_name() {
        let server = new_region().unwrap();
        let shop = region_of("shop-test").unwrap();
        assert!(std::ptr::eq(shop, region_of("shop-test").unwrap()));
        assert!(!std::ptr::eq(shop, server));
        server.app("embedded.py").unwrap();
        shop.app("shop.py").unwrap();
        shop.app("embedded.py").unwrap();
        let s = snapshot(server);
        let names: Vec<&str> = s.apps.iter().map(|a| a.name.as_str()).collect();
        assert!(names.contains(&"shop.py") && names.contains(&"embedded.py"));
        assert_eq!(
            names.iter().filter(|n| **n == "embedded.py").count(),
            1,
            "one series per app"
        );
        assert!(s.groups.iter().any(|g| g.name == "shop-test"));
        assert!(
            server.snapshot().apps.iter().all(|a| a.name != "shop.py"),
            "the server's region holds nothing of the group's"
        );
    }
}
