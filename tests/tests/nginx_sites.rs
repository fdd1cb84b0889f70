//! Real frameworks behind nginx: the Flask and Django example sites, run
//! from a virtualenv given with `wsgi_python_home`.

use oxwsgi_e2e::http::{self, Request, Response};
use oxwsgi_e2e::nginx::{Config, Nginx};
use oxwsgi_e2e::repo;
use oxwsgi_e2e::venv::sites_venv;

fn cookie_of(r: &Response) -> String {
    r.headers_named("Set-Cookie")
        .iter()
        .map(|c| c.split(';').next().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn multipart(field: &str, filename: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "oxwsgiBoundary7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Form POST, redirect, session cookie, upload: what every site does.
fn check_site(n: &Nginx, prefix: &str) {
    let r = http::get(n.port, &format!("{prefix}/"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Hello, stranger!"), "{}", r.text());

    let r = Request::post(
        &format!("{prefix}/name"),
        "application/x-www-form-urlencoded",
        b"name=Alice",
    )
    .send(n.port);
    assert!(matches!(r.status, 302 | 303), "{} {}", r.status, r.text());
    assert!(
        r.header("Location").is_some_and(|l| l.ends_with('/')),
        "{:?}",
        r.headers
    );
    let cookie = cookie_of(&r);
    assert!(!cookie.is_empty(), "no session cookie: {:?}", r.headers);

    let r = Request::get(&format!("{prefix}/"))
        .header("Cookie", &cookie)
        .send(n.port);
    assert!(r.text().contains("Hello, Alice!"), "{}", r.text());

    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 256) as u8).collect();
    let (ct, body) = multipart("file", "data.bin", &data);
    let r = Request::post(&format!("{prefix}/upload"), &ct, &body).send(n.port);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("\"size\": 300000") || r.text().contains("\"size\":300000"),
        "{}",
        r.text()
    );
}

#[test]
fn flask_site_from_a_venv() {
    let venv = sites_venv();
    let site = repo().join("examples/flask_site");
    let n = Nginx::start(
        Config::new(&format!(
            "client_max_body_size 10m;\nlocation / {{ wsgi_app {}; }}",
            site.join("app.py").display()
        ))
        .http(&format!("wsgi_python_home {};", venv.display())),
    );
    check_site(&n, "");
    // Flask serves its static files through wsgi.file_wrapper.
    let r = http::get(n.port, "/static/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        std::fs::read_to_string(site.join("static/style.css")).unwrap()
    );
    let r = Request::post("/json", "application/json", br#"{"a": [1, 2]}"#).send(n.port);
    assert!(r.text().contains("\"got\""), "{}", r.text());
}

#[test]
fn django_site_from_a_venv_under_a_prefix() {
    let venv = sites_venv();
    let site = repo().join("examples/django_site");
    let n = Nginx::start(
        Config::new(&format!(
            "client_max_body_size 10m;\n\
             location /static/ {{ alias {}/static/; }}\n\
             location /site {{ wsgi_app {}; }}",
            site.display(),
            site.join("mysite/wsgi.py").display()
        ))
        .http(&format!("wsgi_python_home {};", venv.display())),
    );
    let r = http::get(n.port, "/site/info");
    assert_eq!(r.status, 200, "{}", r.text());
    let info = r.text();
    assert!(info.contains("\"script_name\": \"/site\""), "{info}");
    assert!(info.contains("\"path\": \"/site/info\""), "{info}");
    check_site(&n, "/site");
    let r = http::get(n.port, "/static/site.css");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("color"), "{}", r.text());
    let r = http::get(n.port, "/site/missing");
    assert_eq!(r.status, 404);
}
