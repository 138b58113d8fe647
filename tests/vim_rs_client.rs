//! An independent VI/JSON client (the `vim_rs` crate) works through the gateway by changing
//! only its base URL, shows the gateway's denials as vim faults, and carries change tickets.

mod common;

use common::{ADMIN_PASSWORD, ADMIN_USER, Harness, RELEASE};
use vim_rs::core::ClientBuilder;
use vim_rs::mo::{HostAccessManager, HostSystem};
use vim_rs::types::enums::{HostLockdownModeEnum, MoTypesEnum};
use vim_rs::types::structs::ManagedObjectReference;

#[tokio::test]
async fn vim_rs_logs_in_reads_a_host_and_is_held_to_the_policies() {
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
        .fetch_property(host, "name")
        .await
        .expect("host name");
    assert!(!name.is_empty());

    let refused = HostSystem::new(client.clone(), "host-22")
        .enter_maintenance_mode_task(0, None, None)
        .await
        .expect_err("maintenance without a change ticket is refused");
    let shown = format!("{refused:?}");
    assert!(shown.contains("RestrictedByAdministrator"), "{shown}");
    assert!(shown.contains("maintenance-needs-ticket"), "{shown}");
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-22"),
        Some(false)
    );

    let ham = HostAccessManager::new(client.clone(), "ham-22");
    let refused = ham
        .change_lockdown_mode(HostLockdownModeEnum::LockdownStrict)
        .await
        .expect_err("strict lockdown is refused");
    assert!(
        format!("{refused:?}").contains("lockdown-no-strict"),
        "{refused:?}"
    );
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-22").as_deref(),
        Some("lockdownDisabled")
    );
    ham.change_lockdown_mode(HostLockdownModeEnum::LockdownNormal)
        .await
        .expect("normal lockdown goes through");
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-22").as_deref(),
        Some("lockdownNormal")
    );
    client.close().await.expect("logout");

    // The same client with a change ticket on every request: maintenance goes through.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-change-ticket", "CHG0012345".parse().expect("header"));
    let http = harness
        .client_builder()
        .default_headers(headers)
        .build()
        .expect("client");
    let client = ClientBuilder::new(&server)
        .http_client(http)
        .basic_authn(ADMIN_USER, ADMIN_PASSWORD)
        .api_release(RELEASE)
        .build()
        .await
        .expect("second session");
    let task = HostSystem::new(client.clone(), "host-22")
        .enter_maintenance_mode_task(0, None, None)
        .await
        .expect("maintenance with a ticket");
    assert!(task.value.starts_with("task-"), "{task:?}");
    assert_eq!(
        harness.sim().simulator.host_in_maintenance("host-22"),
        Some(true)
    );
    client.close().await.expect("logout");
}
