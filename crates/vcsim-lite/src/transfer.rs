//! Datastore file transfer, `/folder/{path}?dcPath=...&dsName=...`, streamed both ways.
//!
//! Uploads are never buffered: the simulator counts the bytes and hashes them, and keeps
//! only (size, SHA-256). Downloads stream a deterministic pattern (byte `i` is `i % 256`):
//! as many bytes as an uploaded file of that name had, or else the `size=N` asked for.

use std::collections::HashMap;
use std::error::Error;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::sessions::{session_header, soap_cookie};
use super::{RequestBody, Seen, SimBody, SimInner, lock, percent_decode, respond};

/// Size of each chunk a download yields.
pub(crate) const CHUNK_SIZE: usize = 64 * 1024;
/// Most uploaded files remembered.
const MAX_FILES: usize = 10_000;

/// What is kept of an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredFile {
    /// Its length in bytes.
    pub(crate) size: u64,
    /// Its SHA-256, lower-case hex.
    pub(crate) sha256: String,
    /// When the upload finished, RFC 3339.
    pub(crate) modified: String,
}

/// Uploaded files by datacenter, datastore and path.
pub(crate) type FileStore = HashMap<String, StoredFile>;

/// A streaming body of `remaining` pattern bytes, yielded in shared 64 KiB chunks.
#[derive(Debug)]
struct PatternBody {
    remaining: u64,
    chunk: Bytes,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Box<dyn Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 || self.chunk.is_empty() {
            return Poll::Ready(None);
        }
        let n = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(self.chunk.len());
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The value of query parameter `name`, decoded.
fn query_param(parts: &Parts, name: &str) -> Option<String> {
    parts.uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v)).flatten()
    })
}

/// The store key of the file a request names.
fn file_key(parts: &Parts) -> String {
    let path = percent_decode(parts.uri.path()).unwrap_or_else(|| parts.uri.path().to_string());
    format!(
        "{}|{}|{}",
        query_param(parts, "dcPath").unwrap_or_default(),
        query_param(parts, "dsName").unwrap_or_default(),
        path
    )
}

/// A plain-text response.
fn plain(status: StatusCode, text: &'static str) -> Response<SimBody> {
    respond(status, Some("text/plain; charset=utf-8"), text)
}

/// Answers a `/folder` request: `PUT` uploads, `GET` downloads; both need a session.
pub(crate) async fn handle(
    sim: &SimInner,
    parts: &Parts,
    body: RequestBody,
) -> (Response<SimBody>, Seen) {
    let token = session_header(&parts.headers).or_else(|| soap_cookie(&parts.headers));
    let logged_in = token.is_some_and(|t| lock(&sim.state).inventory.sessions.get(&t).is_some());
    if !logged_in {
        return (
            plain(StatusCode::UNAUTHORIZED, "Unauthorized\n"),
            Seen::other(),
        );
    }
    let key = file_key(parts);
    let response = match parts.method {
        Method::PUT => upload(sim, key, body).await,
        Method::GET => download(sim, parts, &key),
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n"),
    };
    (response, Seen::other())
}

/// Consumes the upload frame by frame, counting and hashing; stores only size and digest.
async fn upload(sim: &SimInner, key: String, mut body: RequestBody) -> Response<SimBody> {
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    hasher.update(&data);
                    size += data.len() as u64;
                }
            }
            Err(_) => return plain(StatusCode::BAD_REQUEST, "upload interrupted\n"),
        }
    }
    let sha256: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    {
        let mut state = lock(&sim.state);
        if state.files.len() >= MAX_FILES && !state.files.contains_key(&key) {
            state.files.clear();
        }
        state.files.insert(
            key,
            StoredFile {
                size,
                sha256: sha256.clone(),
                modified: super::value::now_rfc3339(),
            },
        );
        state.inventory.datastore_used = state.files.values().map(|f| f.size).sum();
    }
    respond(
        StatusCode::CREATED,
        Some("application/json"),
        json!({"bytes": size, "sha256": sha256}).to_string(),
    )
}

/// Streams the pattern: the stored file's size if it was uploaded, else `size=N` bytes, else 404.
fn download(sim: &SimInner, parts: &Parts, key: &str) -> Response<SimBody> {
    let stored = lock(&sim.state).files.get(key).map(|f| f.size);
    let size = match (stored, query_param(parts, "size")) {
        (Some(size), _) => size,
        (None, Some(text)) => match text.parse::<u64>() {
            Ok(n) => n,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "bad size\n"),
        },
        (None, None) => return plain(StatusCode::NOT_FOUND, "Not Found\n"),
    };
    let body = PatternBody {
        remaining: size,
        chunk: sim.pattern_chunk.clone(),
    };
    let mut response = Response::new(body.boxed_unsync());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(size));
    response
}
