//! Where the server, oxwsgi's module for it and the daemon extension are:
//! beside this program in a build tree (`target/release/`), else where the
//! Debian packages put them.

use std::path::{Path, PathBuf};

use crate::args::Server;

#[derive(Clone, Debug)]
pub struct Install {
    /// The server's program.
    pub program: PathBuf,
    /// oxwsgi's module for it.
    pub module: PathBuf,
    /// oxwsgi's daemon extension (what `check` loads into the app's Python).
    pub extension: PathBuf,
}

const NGINX: &str = "/usr/sbin/nginx";
const APACHE: &str = "/usr/sbin/apache2";

/// Apache's own modules (the MPM, mime, alias, ...).
pub const APACHE_MODULES: &str = "/usr/lib/apache2/modules";

pub fn find(server: Server) -> Result<Install, String> {
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    find_from(server, here.as_deref())
}

fn find_from(server: Server, here: Option<&Path>) -> Result<Install, String> {
    let (program, built, packaged, package, ext_dir, server_package) = match server {
        Server::Nginx => (
            NGINX,
            "libngx_http_oxwsgi_module.so",
            "/usr/lib/nginx/modules/ngx_http_oxwsgi_module.so",
            "libnginx-mod-http-oxwsgi",
            "nginx",
            "nginx",
        ),
        Server::Apache => (
            APACHE,
            "libmod_oxwsgi.so",
            "/usr/lib/apache2/modules/mod_oxwsgi.so",
            "libapache2-mod-oxwsgi",
            "apache2",
            "apache2",
        ),
    };
    if !Path::new(program).exists() {
        return Err(format!(
            "{program} is not installed: apt install {server_package} (or serve with --server {})",
            match server {
                Server::Nginx => "apache",
                Server::Apache => "nginx",
            }
        ));
    }
    let beside = here.map(|d| d.join(built)).filter(|p| p.is_file());
    let (module, extension) = match beside {
        Some(m) => {
            let ext = m.with_file_name("oxwsgi_daemon.so");
            (m, ext)
        }
        None if Path::new(packaged).is_file() => (
            PathBuf::from(packaged),
            Path::new("/usr/lib/oxwsgi")
                .join(ext_dir)
                .join("oxwsgi_daemon.so"),
        ),
        None => {
            return Err(format!(
                "oxwsgi's module for {} is not installed: apt install {package}",
                server.name()
            ));
        }
    };
    Ok(Install {
        program: program.into(),
        module,
        extension,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_build_tree_comes_first() {
        let d = std::env::temp_dir().join(format!("oxwsgi-cli-install-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("libngx_http_oxwsgi_module.so"), "").unwrap();
        if Path::new(NGINX).exists() {
            let i = find_from(Server::Nginx, Some(&d)).unwrap();
            assert_eq!(i.module, d.join("libngx_http_oxwsgi_module.so"));
            assert_eq!(i.extension, d.join("oxwsgi_daemon.so"));
        } else {
            let e = find_from(Server::Nginx, Some(&d)).unwrap_err();
            assert!(e.contains("apt install nginx"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
