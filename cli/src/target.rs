//! What APP names: a WSGI script, a `module:callable`, or a Django project
//! directory (found by its `manage.py`, served through the `wsgi.py` of its
//! settings' package, as `runserver` would pick it).

use std::path::{Path, PathBuf};

/// The app as the servers are given it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub source: Source,
    /// The callable (`application` unless told).
    pub callable: String,
    /// Where it imports from, before `--python-path`.
    pub python_path: Vec<PathBuf>,
    /// Its directory: the default working directory, and what
    /// `--reload-on-changes` watches.
    pub directory: PathBuf,
    /// How the command names it.
    pub describe: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An absolute script path.
    Script(PathBuf),
    /// A dotted module path.
    Module(String),
}

impl Target {
    /// The target as a `wsgi_app` or `oxwsgi check` takes it.
    pub fn spec(&self) -> String {
        match &self.source {
            Source::Script(p) => p.display().to_string(),
            Source::Module(m) => format!("{m}:{}", self.callable),
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Resolves `app` from the directory `cwd`; `callable` is
/// `--callable-object`.
pub fn resolve(app: &str, callable: Option<&str>, cwd: &Path) -> Result<Target, String> {
    let callable_given = callable.unwrap_or("application");
    if !is_identifier(callable_given) {
        return Err(format!(
            "--callable-object {callable_given}: not a Python identifier"
        ));
    }
    let path = cwd.join(app);
    // `mysite.wsgi` is a module unless a file has that name.
    let looks_like_path = app.contains('/') || app.ends_with(".py");
    if path.is_dir() {
        return django(&path);
    }
    if looks_like_path || path.exists() {
        return script(&path, app, callable_given);
    }
    let (module, name) = match app.split_once(':') {
        Some((m, c)) => (m, c),
        None => (app, callable_given),
    };
    if module.is_empty() || !module.split('.').all(is_identifier) || !is_identifier(name) {
        return Err(format!(
            "{app}: no such file, and not a module:callable such as mysite.wsgi:application"
        ));
    }
    Ok(Target {
        source: Source::Module(module.to_string()),
        callable: name.to_string(),
        python_path: vec![cwd.to_path_buf()],
        directory: cwd.to_path_buf(),
        describe: format!("{module}:{name}"),
    })
}

fn script(path: &Path, app: &str, callable: &str) -> Result<Target, String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{app}: no such file"),
        std::io::ErrorKind::PermissionDenied => {
            format!("{app}: this user may not open it (or a directory above it)")
        }
        _ => format!("{app}: {e}"),
    })?;
    if !meta.is_file() {
        return Err(format!("{app}: not a file"));
    }
    std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!("{app}: this user may not read it"),
        _ => format!("{app}: cannot be read: {e}"),
    })?;
    let path = absolute(path);
    let directory = path
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    Ok(Target {
        source: Source::Script(path),
        callable: callable.to_string(),
        python_path: Vec::new(),
        directory,
        describe: app.to_string(),
    })
}

/// A Django project: `manage.py`'s settings module names the package
/// whose `wsgi.py` serves it.
fn django(dir: &Path) -> Result<Target, String> {
    let dir = absolute(dir);
    let manage = dir.join("manage.py");
    let text = std::fs::read_to_string(&manage).map_err(|_| {
        format!(
            "{}: a directory, but not a Django project (no manage.py): give the WSGI script instead",
            dir.display()
        )
    })?;
    let package = settings_module(&text)
        .and_then(|m| m.rsplit_once('.').map(|(p, _)| p.to_string()))
        .ok_or_else(|| {
            format!(
                "{}: names no DJANGO_SETTINGS_MODULE: give the project's wsgi.py instead",
                manage.display()
            )
        })?;
    let wsgi = dir.join(package.replace('.', "/")).join("wsgi.py");
    if !wsgi.is_file() {
        return Err(format!(
            "{}: Django project without {} (django-admin startproject makes one)",
            dir.display(),
            wsgi.display()
        ));
    }
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Ok(Target {
        source: Source::Script(wsgi.clone()),
        callable: "application".into(),
        python_path: vec![dir.clone()],
        directory: dir,
        describe: format!("Django project {name} ({package}/wsgi.py)"),
    })
}

/// The settings module `manage.py` sets as DJANGO_SETTINGS_MODULE's
/// default (`os.environ.setdefault("DJANGO_SETTINGS_MODULE", "x.settings")`).
fn settings_module(manage: &str) -> Option<String> {
    let at = manage.find("DJANGO_SETTINGS_MODULE")?;
    let rest = &manage[at + "DJANGO_SETTINGS_MODULE".len()..];
    let rest = rest.trim_start_matches(['"', '\'']).trim_start();
    let rest = rest.strip_prefix(',')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    let end = value.find(quote)?;
    let module = &value[..end];
    module
        .split('.')
        .all(is_identifier)
        .then(|| module.to_string())
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "oxwsgi-cli-target-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.canonicalize().unwrap()
    }

    #[test]
    fn each_form_of_app() {
        let d = temp();
        std::fs::write(d.join("hello.py"), "").unwrap();
        let t = resolve("hello.py", None, &d).unwrap();
        assert_eq!(t.source, Source::Script(d.join("hello.py")));
        assert_eq!((t.callable.as_str(), &t.directory), ("application", &d));
        let t = resolve("hello.py", Some("app"), &d).unwrap();
        assert_eq!(t.callable, "app");

        let t = resolve("mysite.wsgi:app", None, &d).unwrap();
        assert_eq!(t.source, Source::Module("mysite.wsgi".into()));
        assert_eq!(
            (t.spec().as_str(), &t.python_path),
            ("mysite.wsgi:app", &vec![d.clone()])
        );
        let t = resolve("mysite.wsgi", None, &d).unwrap();
        assert_eq!(t.spec(), "mysite.wsgi:application");

        let p = d.join("proj");
        std::fs::create_dir_all(p.join("mysite")).unwrap();
        std::fs::write(
            p.join("manage.py"),
            "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n",
        )
        .unwrap();
        std::fs::write(p.join("mysite/wsgi.py"), "").unwrap();
        let t = resolve("proj", None, &d).unwrap();
        assert_eq!(t.source, Source::Script(p.join("mysite/wsgi.py")));
        assert_eq!((&t.python_path, &t.directory), (&vec![p.clone()], &p));
        assert!(t.describe.contains("Django project proj"), "{}", t.describe);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        let d = temp();
        std::fs::create_dir_all(d.join("empty")).unwrap();
        std::fs::create_dir_all(d.join("nowsgi")).unwrap();
        std::fs::write(
            d.join("nowsgi/manage.py"),
            "os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"site.settings\")",
        )
        .unwrap();
        for (app, callable, says) in [
            ("missing.py", None, "missing.py: no such file"),
            ("sub/missing.wsgi", None, "no such file"),
            ("no such thing", None, "not a module:callable"),
            ("pkg.mod:not-a-name", None, "not a module:callable"),
            ("empty", None, "not a Django project (no manage.py)"),
            ("nowsgi", None, "Django project without"),
            ("x.py", Some("a-b"), "not a Python identifier"),
        ] {
            let e = resolve(app, callable, &d).unwrap_err();
            assert!(e.contains(says), "{app}: {e}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_settings_module_of_manage_py() {
        assert_eq!(
            settings_module("os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"a.b.settings\")"),
            Some("a.b.settings".into())
        );
        assert_eq!(
            settings_module("os.environ['DJANGO_SETTINGS_MODULE'] = x"),
            None
        );
        assert_eq!(
            settings_module("setdefault('DJANGO_SETTINGS_MODULE', 'a b')"),
            None
        );
    }
}
