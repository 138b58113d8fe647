//! The step contract end to end inside the crate: a panicking step fails its request with a vim
//! fault in the client's protocol and an audit record, the stack keeps serving, and a step is
//! passed by where it does not apply.

use std::path::Path;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt};

use crate::audit::{AuditConfig, AuditLog};
use crate::body::{ProxyBody, full};
use crate::gate::audit::Audit;
use crate::gate::error::GatewayError;
use crate::gate::facts::Facts;
use crate::gate::rescue::RescueLayer;
use crate::gate::step::{Inner, Next, Step, StepLayer, StepResult};
use crate::metrics::Metrics;
use crate::policy::{PolicySet, PolicyStore};

/// Panics on any path containing `panic`; passes everything else on.
struct PanicsOnRequest;

impl Step for PanicsOnRequest {
    async fn handle<S: Inner>(
        &self,
        req: Request<ProxyBody>,
        _facts: Arc<Facts>,
        next: Next<S>,
    ) -> StepResult {
        if req.uri().path().contains("panic") {
            panic!("step failed on purpose");
        }
        next.run(req).await
    }
}

/// Applies only to paths containing `applies`, and panics on every request it handles.
struct PanicsWhereItApplies;

impl Step for PanicsWhereItApplies {
    async fn handle<S: Inner>(
        &self,
        _req: Request<ProxyBody>,
        _facts: Arc<Facts>,
        _next: Next<S>,
    ) -> StepResult {
        panic!("a step that applies handled the request");
    }

    fn applies_to(&self, req: &Request<ProxyBody>, _facts: &Facts) -> bool {
        req.uri().path().contains("applies")
    }
}

async fn answer(
    service: &tower::util::BoxCloneService<
        Request<ProxyBody>,
        Response<ProxyBody>,
        std::convert::Infallible,
    >,
    path: &str,
) -> (StatusCode, String) {
    let req = Request::post(path).body(full("")).expect("request");
    let response = service.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_panicking_step_answers_a_vim_fault_in_the_clients_protocol_and_is_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit_path = dir.path().join("audit.jsonl");
    let (log, task) = AuditLog::open(AuditConfig::new(&audit_path, vec![7; 32], "gw-test"))
        .await
        .expect("audit log");
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let store = PolicyStore::new(PolicySet::load(&policies).expect("policies"), policies);
    let upstream = tower::service_fn(|_req: Request<ProxyBody>| async {
        Ok::<_, GatewayError>(Response::new(full("vCenter's answer")))
    });
    let service = tower::util::BoxCloneService::new(
        ServiceBuilder::new()
            .layer(RescueLayer::new(Arc::new(store), Arc::new(Metrics::new())))
            .layer(StepLayer::new(Audit::new(log.clone())))
            .layer(StepLayer::new(PanicsOnRequest))
            .layer(StepLayer::new(PanicsWhereItApplies))
            .service(tower::util::BoxCloneSyncService::new(upstream)),
    );

    let (status, soap) = answer(&service, "/sdk/panic").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(soap.contains("<soapenv:Fault>"), "{soap}");
    assert!(soap.contains(r#"xsi:type="SystemError""#), "{soap}");
    assert!(soap.contains("step failed on purpose"), "{soap}");

    let (status, json) = answer(&service, "/sdk/vim25/8.0.3.0/HostSystem/panic/Foo").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let fault: serde_json::Value = serde_json::from_str(&json).expect("JSON fault");
    assert_eq!(fault["_typeName"], "SystemError");

    let (status, body) = answer(&service, "/sdk/vim25/8.0.3.0/HostSystem/host-21/Foo").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "vCenter's answer")
    );

    let (status, body) = answer(&service, "/sdk/vim25/8.0.3.0/HostSystem/applies/Foo").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("a step that applies handled the request"),
        "{body}"
    );

    log.flush().await.expect("flush");
    log.close().await;
    task.wait().await.expect("audit writer");
    let records = std::fs::read_to_string(&audit_path).expect("audit file");
    let internal = records
        .lines()
        .filter(|line| line.contains(r#""error":"internal""#))
        .count();
    assert_eq!(internal, 3, "{records}");
}
