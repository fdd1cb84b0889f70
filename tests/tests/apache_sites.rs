//! Flask and Django behind Apache, from a virtualenv (WSGIPythonHome).

use oxwsgi_e2e::apache::Apache;
use oxwsgi_e2e::http::{self, Request};
use oxwsgi_e2e::venv::sites_venv;
use oxwsgi_e2e::{repo, temp_dir};

fn session_round_trip(port: u16, prefix: &str) {
    let r = Request::post(
        &format!("{prefix}/name"),
        "application/x-www-form-urlencoded",
        b"name=Bob",
    )
    .send(port);
    assert!(matches!(r.status, 302 | 303), "{} {}", r.status, r.text());
    let cookie: Vec<_> = r
        .headers_named("Set-Cookie")
        .iter()
        .map(|c| c.split(';').next().unwrap_or("").to_string())
        .collect();
    let r = Request::get(&format!("{prefix}/"))
        .header("Cookie", &cookie.join("; "))
        .send(port);
    assert!(r.text().contains("Hello, Bob!"), "{}", r.text());
}

#[test]
fn flask_and_django_from_a_venv() {
    let venv = sites_venv();
    let a = Apache::start(
        "event",
        &format!(
            "WSGIPythonHome {venv}\n\
             WSGIScriptAlias /flask {flask}\n\
             WSGIScriptAlias /django {django}\n\
             <Directory {examples}>\n    Require all granted\n</Directory>",
            venv = venv.display(),
            flask = repo().join("examples/flask_site/app.py").display(),
            django = repo().join("examples/django_site/mysite/wsgi.py").display(),
            examples = repo().join("examples").display(),
        ),
    );
    assert!(
        http::get(a.port, "/flask/")
            .text()
            .contains("Hello, stranger!")
    );
    session_round_trip(a.port, "/flask");
    let r = http::get(a.port, "/flask/static/style.css");
    assert_eq!(r.status, 200);
    let info = http::get(a.port, "/django/info").text();
    assert!(info.contains("\"script_name\": \"/django\""), "{info}");
    session_round_trip(a.port, "/django");
}

/// Two Django projects in one Apache, both named `mysite` (each imports its
/// own `mysite.settings`), with no WSGIApplicationGroup: each runs in its
/// own interpreter (`%{RESOURCE}`, as mod_wsgi) and answers with its own
/// settings, in the same child processes.
#[test]
fn two_django_sites_each_get_their_own_settings() {
    let venv = sites_venv();
    let second = temp_dir("second-django");
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo().join("examples/django_site/mysite"))
        .arg(&second)
        .status()
        .unwrap();
    assert!(copy.success());
    let settings = second.join("mysite/settings.py");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(
        &settings,
        text.replace("SITE_NAME = \"example\"", "SITE_NAME = \"second\""),
    )
    .unwrap();
    let a = Apache::start(
        "event",
        &format!(
            "WSGIPythonHome {venv}\n\
             WSGIScriptAlias /one {one}\n\
             WSGIScriptAlias /two {two}\n\
             <Directory {examples}>\n    Require all granted\n</Directory>\n\
             <Directory {second}>\n    Require all granted\n</Directory>",
            venv = venv.display(),
            one = repo().join("examples/django_site/mysite/wsgi.py").display(),
            two = second.join("mysite/wsgi.py").display(),
            examples = repo().join("examples").display(),
            second = second.display(),
        ),
    );
    // Many requests, so every child serves both sites.
    for _ in 0..20 {
        let one = http::get(a.port, "/one/info").text();
        assert!(one.contains("\"site\": \"example\""), "{one}");
        let two = http::get(a.port, "/two/info").text();
        assert!(two.contains("\"site\": \"second\""), "{two}");
    }
    session_round_trip(a.port, "/two");
}
