//! End-to-end: reverse-proxy semantics vCenter and its clients rely on.

mod common;

use common::{Harness, tls_connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn headers_are_rewritten_like_a_reverse_proxy() {
    let harness = Harness::start().await;
    let client = harness.client();
    let content = format!("{}/ServiceInstance/ServiceInstance/content", harness.vim());
    let last_seen_by_vcenter = || {
        harness
            .sim()
            .simulator
            .journal()
            .pop()
            .expect("sim saw the request")
    };
    let response = client
        .get(&content)
        .header("Connection", "x-hop-secret")
        .header("x-hop-secret", "must not travel")
        .header("x-request-id", "client-chosen")
        .header("X-Forwarded-For", "10.1.2.3")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let gateway_id = response.headers()["x-request-id"].to_str().expect("ascii");
    assert_ne!(gateway_id, "client-chosen");
    assert_eq!(gateway_id.len(), 32);

    let seen = last_seen_by_vcenter();
    let header = |name: &str| {
        seen.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    assert_eq!(header("host"), Some(harness.sim().addr.to_string()));
    assert_eq!(
        header("x-forwarded-for").as_deref(),
        Some("10.1.2.3, 127.0.0.1")
    );
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(
        header("x-forwarded-host"),
        Some(format!("localhost:{}", harness.gateway.port()))
    );
    assert_eq!(header("x-hop-secret"), None);
    assert_eq!(header("x-request-id"), None);

    // Without a prior hop the client's address alone is sent (made once per connection).
    let response = client.get(&content).send().await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        last_seen_by_vcenter()
            .headers
            .get("x-forwarded-for")
            .map(|v| v.to_str().expect("ascii")),
        Some("127.0.0.1")
    );
}

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let harness = Harness::start().await;
    let mut tls = tls_connect(&harness).await;

    let request = format!(
        "GET /ticket/0123abcd HTTP/1.1\r\nHost: localhost:{}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        harness.gateway.port()
    );
    tls.write_all(request.as_bytes())
        .await
        .expect("send upgrade");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("utf-8 head");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );

    for message in [&b"console frame one"[..], &[0u8, 255, 1, 254, 2][..]] {
        tls.write_all(message)
            .await
            .expect("write through the tunnel");
        let mut echoed = vec![0u8; message.len()];
        tls.read_exact(&mut echoed)
            .await
            .expect("echo through the tunnel");
        assert_eq!(echoed, message);
    }
}

#[tokio::test]
async fn an_upload_the_client_abandons_is_not_blamed_on_vcenter() {
    let harness = Harness::start().await;
    let mut tls = tls_connect(&harness).await;
    let head = format!(
        "PUT /folder/abandoned.iso?dcPath=Datacenter&dsName=datastore1 HTTP/1.1\r\nHost: localhost:{}\r\nContent-Length: 1048576\r\n\r\n",
        harness.gateway.port()
    );
    tls.write_all(head.as_bytes()).await.expect("head");
    tls.write_all(&[7u8; 65536])
        .await
        .expect("part of the body");
    tls.flush().await.expect("flush");
    // Stop sending (TLS close_notify + FIN) with most of the promised body missing.
    tls.shutdown().await.expect("shutdown");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;

    let metrics_url = format!("http://{}/metrics", harness.admin);
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = reqwest::get(&metrics_url)
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if metrics.contains(r#"outcome="client_aborted"} 1"#) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        metrics.contains(r#"vcguard_requests_total{outcome="client_aborted"} 1"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"outcome="upstream_error"} 1"#),
        "{metrics}"
    );
}
