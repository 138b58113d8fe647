//! An independent VI/JSON client (the `vim_rs` crate) works through the gateway by changing only its base URL.

mod common;

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness, RELEASE};
use vim_rs::core::ClientBuilder;
use vim_rs::mo::HostSystem;
use vim_rs::types::enums::MoTypesEnum;
use vim_rs::types::structs::ManagedObjectReference;

#[tokio::test]
async fn vim_rs_logs_in_reads_a_host_and_enters_maintenance_mode() {
    let harness = Harness::start().await;
    let server = format!("localhost:{}", harness.gateway.port());
    let client = ClientBuilder::new(&server)
        .http_client(harness.client())
        .basic_authn(ADMIN_USER, ADMIN_PASSWORD)
        .api_release(RELEASE)
        .app_details("vcguard-tests", env!("CARGO_PKG_VERSION"))
        .build()
        .await
        .expect("vim_rs logs in through the gateway");

    let host = ManagedObjectReference {
        r#type: MoTypesEnum::HostSystem,
        value: "host-22".into(),
    };
    let name: String = client
        .fetch_property(host.clone(), "name")
        .await
        .expect("host name");
    assert!(!name.is_empty());

    let task = HostSystem::new(client.clone(), "host-22")
        .enter_maintenance_mode_task(0, None, None)
        .await
        .expect("EnterMaintenanceMode_Task");
    assert!(task.value.starts_with("task-"), "{task:?}");
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-22"),
        Some(true)
    );
    client.close().await.expect("logout");
}
