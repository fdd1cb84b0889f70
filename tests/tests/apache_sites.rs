//! Flask and Django behind Apache, from a virtualenv (WSGIPythonHome).

use oxwsgi_e2e::apache::Apache;
use oxwsgi_e2e::http::{self, Request};
use oxwsgi_e2e::repo;
use oxwsgi_e2e::venv::sites_venv;

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
