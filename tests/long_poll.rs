//! Long-running calls through the gateway. The pool's idle reaping must not touch a connection
//! whose request is still waiting on vCenter.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::edge::EdgeGateway;
use vcguard::config::{UpstreamTrust, parse_thumbprint};
use vcguard::server::ConnectionLimits;
use vcsim_lite::SimConfig;
use vcsim_lite::server::start;

const CONTENT: &str = "/sdk/vim25/8.0.3.0/ServiceInstance/ServiceInstance/content";

#[tokio::test]
async fn a_request_waiting_on_vcenter_outlives_the_pool_idle_timeout() {
    // vCenter takes 3 s per answer; the pool reaps connections idle for 1 s.
    let sim = start(
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        true,
        SimConfig {
            response_delay: Some(Duration::from_secs(3)),
            ..SimConfig::default()
        },
    )
    .await
    .expect("simulator starts");
    let print = sim.certificate.as_ref().expect("TLS sim").thumbprint();
    let trust = UpstreamTrust::Thumbprint(parse_thumbprint(&print).expect("thumbprint"));
    let gateway = EdgeGateway::start(
        &sim.base_url(),
        trust,
        ConnectionLimits::default(),
        |options| {
            options.pool_idle_timeout = Duration::from_secs(1);
            options.response_timeout = Duration::from_secs(30);
            options.max_connections = 1;
        },
    )
    .await;
    let client = gateway.client(Duration::from_secs(40));
    // The second call reuses the pooled connection (one upstream connection at most) and waits
    // three times the idle timeout on it.
    for round in 0..2 {
        let started = Instant::now();
        let response = client
            .get(format!("{}{CONTENT}", gateway.base()))
            .send()
            .await
            .expect("answer");
        assert_eq!(
            response.status(),
            200,
            "round {round}: a waiting request was cut"
        );
        eprintln!("round {round}: 200 after {:?}", started.elapsed());
    }
    gateway.stop().await;
}
