//! vCenter dies in the middle of an answer: the client sees the answer break off, and the audit
//! log says so (a second outcome record with `upstream_reset` and the bytes that really went out),
//! instead of a clean `200` with the announced length.

mod common;

use std::time::Duration;

use common::edge::EdgeGateway;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vcguard::config::UpstreamTrust;
use vcguard::server::ConnectionLimits;

const ANNOUNCED: usize = 1024 * 1024;
const SENT: usize = 64 * 1024;

/// A plain-HTTP "vCenter" that answers one request with a 1 MiB download and dies after 64 KiB.
async fn dying_vcenter() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.expect("read request");
            assert!(n > 0, "the gateway closed before sending the request");
            head.extend_from_slice(&buf[..n]);
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {ANNOUNCED}\r\n\r\n"
        );
        socket.write_all(answer.as_bytes()).await.expect("head");
        socket
            .write_all(&vec![0x5a; SENT])
            .await
            .expect("part of the body");
        socket.flush().await.expect("flush");
        // vCenter's process dies: the connection is reset, the rest never comes.
        socket.set_zero_linger().expect("linger");
        drop(socket);
    });
    addr
}

fn outcomes_of(audit_path: &std::path::Path, request_id: &str) -> Vec<Value> {
    std::fs::read_to_string(audit_path)
        .expect("audit log")
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON record"))
        .filter(|r| r["kind"] == "outcome" && r["request_id"] == request_id)
        .collect()
}

#[tokio::test]
async fn a_download_cut_by_vcenters_death_is_recorded_as_broken_off() {
    let vcenter = dying_vcenter().await;
    let gateway = EdgeGateway::start(
        &format!("http://{vcenter}"),
        UpstreamTrust::PlainHttp,
        ConnectionLimits::default(),
        |_| {},
    )
    .await;
    let response = gateway
        .client(Duration::from_secs(10))
        .get(format!(
            "{}/folder/big.iso?dcPath=dc-1&dsName=datastore1",
            gateway.base()
        ))
        .send()
        .await
        .expect("the head arrives");
    assert_eq!(response.status(), 200);
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id")
        .to_owned();
    let body = response.bytes().await;
    assert!(body.is_err(), "the client must see the download break off");

    // The break is recorded when the gateway notices it; give the writer a moment.
    let mut outcomes = Vec::new();
    for _ in 0..100 {
        outcomes = outcomes_of(&gateway.audit_path, &request_id);
        if outcomes.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gateway.stop().await;
    assert_eq!(
        outcomes.len(),
        2,
        "the answer's outcome and the break: {outcomes:?}"
    );
    assert_eq!(outcomes[0]["status"], 200);
    assert_eq!(outcomes[0]["bytes_out"], ANNOUNCED as u64, "as announced");
    let broken = &outcomes[1];
    assert_eq!(broken["error"], "upstream_reset", "{broken}");
    for member in [
        "client", "protocol", "method", "mo_type", "mo_id", "session",
    ] {
        assert_eq!(
            broken[member], outcomes[0][member],
            "the break names the same call as its answer ({member})"
        );
    }
    let client = broken["client"].as_str().expect("client");
    let port = client.strip_prefix("127.0.0.1:").map(str::parse::<u16>);
    assert!(
        matches!(port, Some(Ok(_))),
        "ip:port of the client: {broken}"
    );
    let sent = broken["bytes_out"].as_u64().expect("bytes_out");
    assert!(
        sent <= SENT as u64,
        "only what vCenter sent can have gone out ({sent} bytes)"
    );
}
