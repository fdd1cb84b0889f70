//! `--reload-on-changes`: which `.py` file under the app's directories
//! changed since the last look (mtimes, looked at once a second: no
//! inotify limits to run into, and a second is as fast as a person saves).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The most files watched: a directory with more is not a project.
const MAX_FILES: usize = 20_000;

pub struct Watch {
    roots: Vec<PathBuf>,
    /// Directories never looked into (the virtualenv).
    skip: Vec<PathBuf>,
    seen: HashMap<PathBuf, SystemTime>,
}

impl Watch {
    pub fn new(roots: Vec<PathBuf>, skip: Vec<PathBuf>) -> Watch {
        let mut w = Watch {
            roots,
            skip,
            seen: HashMap::new(),
        };
        w.seen = w.scan();
        w
    }

    /// How many files are watched.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// A file that changed, appeared or went since the last call.
    pub fn changed(&mut self) -> Option<PathBuf> {
        let now = self.scan();
        let changed = now
            .iter()
            .find(|(p, t)| self.seen.get(*p) != Some(t))
            .map(|(p, _)| p.clone())
            .or_else(|| self.seen.keys().find(|p| !now.contains_key(*p)).cloned());
        self.seen = now;
        changed
    }

    fn scan(&self) -> HashMap<PathBuf, SystemTime> {
        let mut found = HashMap::new();
        let mut dirs: Vec<PathBuf> = self.roots.clone();
        while let Some(d) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let Ok(t) = e.file_type() else { continue };
                if t.is_dir() {
                    if !self.skipped(&p) {
                        dirs.push(p);
                    }
                } else if p.extension().is_some_and(|x| x == "py") {
                    if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                        found.insert(p, m);
                    }
                    if found.len() >= MAX_FILES {
                        return found;
                    }
                }
            }
        }
        found
    }

    fn skipped(&self, dir: &Path) -> bool {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        name.starts_with('.')
            || name == "__pycache__"
            || name == "node_modules"
            || dir.join("pyvenv.cfg").exists()
            || self.skip.iter().any(|s| dir.starts_with(s))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_edit_a_new_file_and_a_removal_are_seen_the_venv_is_not() {
        let d = std::env::temp_dir().join(format!("oxwsgi-cli-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("pkg/__pycache__")).unwrap();
        std::fs::create_dir_all(d.join("venv/lib")).unwrap();
        std::fs::write(d.join("venv/pyvenv.cfg"), "").unwrap();
        std::fs::write(d.join("app.py"), "a").unwrap();
        std::fs::write(d.join("pkg/mod.py"), "a").unwrap();
        let mut w = Watch::new(vec![d.clone()], Vec::new());
        assert_eq!(w.len(), 2);
        assert_eq!(w.changed(), None);
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        let touch = |p: &Path| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(later)
                .unwrap()
        };
        touch(&d.join("pkg/mod.py"));
        assert_eq!(w.changed(), Some(d.join("pkg/mod.py")));
        assert_eq!(w.changed(), None);
        std::fs::write(d.join("venv/lib/site.py"), "x").unwrap();
        std::fs::write(d.join("pkg/__pycache__/mod.py"), "x").unwrap();
        std::fs::write(d.join("notes.txt"), "x").unwrap();
        assert_eq!(w.changed(), None, "the venv, caches and other files");
        std::fs::write(d.join("new.py"), "x").unwrap();
        assert_eq!(w.changed(), Some(d.join("new.py")));
        std::fs::remove_file(d.join("app.py")).unwrap();
        assert_eq!(w.changed(), Some(d.join("app.py")));
        let _ = std::fs::remove_dir_all(&d);
    }
}
