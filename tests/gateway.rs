//! End-to-end: the gateway core over real sockets and real TLS, with the simulator as vCenter.

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness, Options, soap_login_envelope};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn json_login_and_host_read_through_the_gateway() {
    let harness = Harness::start().await;
    let client = harness.client();
    let token = harness.login(&client).await;

    let response = client
        .get(format!("{}/HostSystem/host-21/runtime", harness.vim()))
        .header("vmware-api-session-id", &token)
        .send()
        .await
        .expect("runtime read");
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let runtime: Value = response.json().await.expect("json");
    assert_eq!(runtime["inMaintenanceMode"], false);

    let name: Value = client
        .get(format!("{}/HostSystem/host-21/name", harness.vim()))
        .header("vmware-api-session-id", &token)
        .send()
        .await
        .expect("name read")
        .json()
        .await
        .expect("json");
    assert!(name.as_str().is_some_and(|n| !n.is_empty()), "{name}");
}

#[tokio::test]
async fn http2_clients_are_served() {
    let harness = Harness::start().await;
    let client = harness
        .client_builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = client
        .get(format!(
            "{}/ServiceInstance/ServiceInstance/content",
            harness.vim()
        ))
        .send()
        .await
        .expect("content over h2");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn soap_login_sets_a_cookie_that_works_through_the_gateway() {
    let harness = Harness::start().await;
    let client = harness.client();
    let response = client
        .post(format!("{}/sdk", harness.base()))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"urn:vim25/9.1.1.0\"")
        .body(soap_login_envelope(ADMIN_USER, ADMIN_PASSWORD))
        .send()
        .await
        .expect("soap login");
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .expect("session cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("vmware_soap_session="), "{cookie}");
    let body = response.text().await.expect("body");
    assert!(body.contains("<LoginResponse"), "{body}");

    // pyVmomi echoes the whole Set-Cookie string back; the session must still work.
    let envelope = r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><CurrentTime xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></CurrentTime></soapenv:Body></soapenv:Envelope>"#;
    let response = client
        .post(format!("{}/sdk", harness.base()))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("Cookie", format!("{cookie}; HttpOnly"))
        .body(envelope)
        .send()
        .await
        .expect("soap call");
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("<CurrentTimeResponse")
    );
}

#[tokio::test]
async fn large_upload_and_download_stream_through() {
    const CHUNK: usize = 256 * 1024;
    const CHUNKS: usize = 256; // 64 MiB
    let harness = Harness::start().await;
    let client = harness.client();
    let token = harness.login(&client).await;

    let chunk = bytes::Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let mut expected = Sha256::new();
    for _ in 0..CHUNKS {
        expected.update(&chunk);
    }
    let expected = hex(&expected.finalize());
    let stream = futures_util::stream::iter(
        (0..CHUNKS).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let response = client
        .put(format!(
            "{}/folder/big.iso?dcPath=dc1&dsName=ds1",
            harness.base()
        ))
        .header("vmware-api-session-id", &token)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.expect("json");
    assert_eq!(stored["bytes"], (CHUNK * CHUNKS) as u64);
    assert_eq!(stored["sha256"], expected);

    let size = 48 * 1024 * 1024;
    let mut response = client
        .get(format!(
            "{}/folder/synthetic.bin?dcPath=dc1&dsName=ds1&size={size}",
            harness.base()
        ))
        .header("vmware-api-session-id", &token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    let mut received = 0usize;
    while let Some(piece) = response.chunk().await.expect("chunk") {
        received += piece.len();
    }
    assert_eq!(received, size);
}

#[tokio::test]
async fn vcenter_down_gives_502_vim_fault_in_both_protocols() {
    let mut harness = Harness::start().await;
    harness.stop_sim().await;
    let client = harness.client();

    let response = client
        .get(format!("{}/HostSystem/host-21/runtime", harness.vim()))
        .send()
        .await
        .expect("json request");
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["content-type"], "application/json");
    let fault: Value = response.json().await.expect("json fault");
    assert_eq!(fault["_typeName"], "HostCommunication");
    let text = fault["faultstring"].as_str().expect("faultstring");
    assert!(text.contains("cannot reach vCenter"), "{text}");
    assert_eq!(fault["faultMessage"][0]["message"], fault["faultstring"]);

    let response = client
        .post(format!("{}/sdk", harness.base()))
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(soap_login_envelope(ADMIN_USER, ADMIN_PASSWORD))
        .send()
        .await
        .expect("soap request");
    assert_eq!(response.status(), 502);
    assert_eq!(
        response.headers()["content-type"],
        "text/xml; charset=utf-8"
    );
    let body = response.text().await.expect("body");
    assert!(
        body.contains(
            "<faultcode>ServerFaultCode</faultcode><faultstring>vcguard cannot reach vCenter"
        ),
        "{body}"
    );
    assert!(
        body.contains(r#"<HostCommunicationFault xmlns="urn:vim25" xsi:type="HostCommunication">"#),
        "{body}"
    );
}

#[tokio::test]
async fn slow_vcenter_gives_504() {
    let sim = vcsim_lite::SimConfig {
        response_delay: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    let harness = Harness::start_with(Options {
        sim,
        response_timeout: Duration::from_millis(500),
        ..Options::default()
    })
    .await;
    let response = harness
        .client()
        .get(format!(
            "{}/ServiceInstance/ServiceInstance/content",
            harness.vim()
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 504);
    let fault: Value = response.json().await.expect("json fault");
    assert!(
        fault["faultstring"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer"),
        "{fault}"
    );
}

#[tokio::test]
async fn vcenter_never_sees_more_requests_at_once_than_max_connections() {
    max_connections_hold(1).await;
}

#[tokio::test]
async fn per_core_workers_share_one_max_connections() {
    max_connections_hold(2).await;
}

/// Eight clients on their own connections against `max_upstream_connections = 2`.
async fn max_connections_hold(workers: usize) {
    let sim = vcsim_lite::SimConfig {
        response_delay: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let harness = Harness::start_with(Options {
        sim,
        max_upstream_connections: Some(2),
        workers,
        ..Options::default()
    })
    .await;
    let url = format!("{}/ServiceInstance/ServiceInstance/content", harness.vim());
    let calls = (0..8).map(|_| {
        let client = harness.client();
        let url = url.clone();
        async move { client.get(url).send().await.expect("request").status() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| s.as_u16() == 200), "{statuses:?}");
    assert_eq!(harness.sim().simulator.max_in_flight(), 2);
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    graceful_shutdown(1).await;
}

#[tokio::test]
async fn per_core_workers_serve_and_drain_on_shutdown() {
    graceful_shutdown(2).await;
}

/// A slow request in flight when shutdown begins finishes; new connections are refused.
async fn graceful_shutdown(workers: usize) {
    let sim = vcsim_lite::SimConfig {
        response_delay: Some(Duration::from_millis(1500)),
        ..Default::default()
    };
    let mut harness = Harness::start_with(Options {
        sim,
        workers,
        ..Options::default()
    })
    .await;
    let client = harness.client();
    let url = format!("{}/ServiceInstance/ServiceInstance/content", harness.vim());
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.get(url).send().await }
    });
    // Let the request reach the simulator before shutdown begins.
    while harness.sim().simulator.journal().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = harness.shutdown().await;
    let response = in_flight
        .await
        .expect("task")
        .expect("in-flight request completes");
    assert_eq!(response.status(), 200);
    assert!(drained, "drained within the grace period");
    let refused = harness
        .client()
        .get(format!(
            "{}/ServiceInstance/ServiceInstance/content",
            harness.vim()
        ))
        .send()
        .await;
    assert!(refused.is_err(), "no new connections after shutdown");
}

#[tokio::test]
async fn admin_endpoints_report_health_and_metrics() {
    let harness = Harness::start().await;
    let client = harness.client();
    harness.login(&client).await;
    let admin = reqwest::Client::new();
    let health = admin
        .get(format!("http://{}/healthz", harness.admin))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = admin
        .get(format!("http://{}/readyz", harness.admin))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let metrics = admin
        .get(format!("http://{}/metrics", harness.admin))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"vcguard_requests_total{outcome="forwarded"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("vcguard_upstream_latency_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("vcguard_open_connections"), "{metrics}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_long_poll_outlives_the_response_timeout_by_its_own_wait() {
    let harness = Harness::start_with(Options {
        response_timeout: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let client = harness.client();
    let token = harness.login(&client).await;
    let started = std::time::Instant::now();
    let response = client
        .post(format!(
            "{}/PropertyCollector/propertyCollector/WaitForUpdatesEx",
            harness.vim()
        ))
        .header("vmware-api-session-id", &token)
        .json(&serde_json::json!({
            "version": "",
            "options": {"_typeName": "WaitOptions", "maxWaitSeconds": 3}
        }))
        .send()
        .await
        .expect("long poll");
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "vCenter's wait of 3 s is not cut by the 1 s response timeout: {status} {body}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the simulator waited"
    );
}
