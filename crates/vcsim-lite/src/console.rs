//! `GET /ticket/{ticket}` with `Upgrade: websocket`: the console connection path, as an echo.
//!
//! vSphere's web consoles upgrade an HTTPS request to a WebSocket. The simulator answers
//! `101 Switching Protocols` and then echoes every byte, which is enough to prove that a
//! gateway passes upgraded connections through untouched.

use http::header::{CONNECTION, HeaderValue, UPGRADE};
use http::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Seen, SimBody, respond};

/// Whether `path` is a console ticket path.
pub(crate) fn is_console_path(path: &str) -> bool {
    path.strip_prefix("/ticket/")
        .is_some_and(|ticket| !ticket.is_empty() && !ticket.contains('/'))
}

/// Upgrades the connection and echoes, or answers 400 when the request asks for no upgrade.
pub(crate) fn handle(parts: &mut http::request::Parts) -> (Response<SimBody>, Seen) {
    let wants_websocket = parts
        .headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let (true, Some(on_upgrade)) = (wants_websocket, on_upgrade) else {
        let response = respond(
            StatusCode::BAD_REQUEST,
            Some("text/plain; charset=utf-8"),
            "console connections need Upgrade: websocket\n",
        );
        return (response, Seen::other());
    };
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let mut buf = [0u8; 8192];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut response = respond(StatusCode::SWITCHING_PROTOCOLS, None, bytes::Bytes::new());
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    (response, Seen::other())
}
