//! A tiny HTTP app (spin-sdk 7, WASI P3) whose settings come from `wasi:config/store`, the way
//! Spin's variables reach an app. Nothing here knows about secrets: composed with the
//! edge-secrets config provider, a setting the provider's policy maps is read from a secret store.
//!
//! - `GET /` greets with the `greeting` setting and says whether `db_password` is set.
//! - `GET /settings/{key}` and `GET /settings` answer what the app can read. **A real app must
//!   never do this**; the example does it to show exactly what the composition lets an app see:
//!   its own settings and the mapped secrets, never the provider's policy or credentials.

use bytes::Bytes;
use spin_sdk::http::{FullBody, Request};

mod bindings {
    spin_sdk::wit_bindgen::generate!({
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        path: "wit",
        world: "example:config-app/settings",
        generate_all,
    });
}

use bindings::wasi::config::store;

#[spin_sdk::http_service]
async fn handle(request: Request) -> http::Response<FullBody<Bytes>> {
    let path = request.uri().path();
    match path {
        "/" => home(),
        "/settings" => match store::get_all() {
            Ok(pairs) => reply(200, pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()),
            Err(e) => failed(e),
        },
        _ => match path.strip_prefix("/settings/") {
            Some(key) => match store::get(key) {
                Ok(Some(value)) => reply(200, value),
                Ok(None) => reply(404, format!("{key} is not set\n")),
                Err(e) => failed(e),
            },
            None => reply(404, "no such route\n".into()),
        },
    }
}

fn home() -> http::Response<FullBody<Bytes>> {
    let greeting = store::get("greeting").ok().flatten().unwrap_or_else(|| "hello".into());
    let password = match store::get("db_password") {
        Ok(Some(p)) => format!("db_password is set ({} bytes)", p.len()),
        Ok(None) => "db_password is not set".into(),
        Err(_) => "db_password cannot be read right now".into(),
    };
    reply(200, format!("{greeting}: {password}\n"))
}

/// A settings failure: 503 with the store's message (which names the key, never a value).
fn failed(error: store::Error) -> http::Response<FullBody<Bytes>> {
    let (store::Error::Upstream(message) | store::Error::Io(message)) = error;
    reply(503, format!("{message}\n"))
}

fn reply(status: u16, body: String) -> http::Response<FullBody<Bytes>> {
    let mut response = http::Response::new(FullBody::new(Bytes::from(body)));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    response
}
