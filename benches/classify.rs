//! Classification cost per request: the path parser, the SOAP head sniffer on an
//! unguarded call, and the strict parsers of both guarded bodies in both protocols.

use std::hint::black_box;

use criterion::Criterion;
use vcguard::vsphere::classify::{
    PathClass, classify_path, classify_soap, classify_vim_json, operation_from_soap_head,
};
use vcguard::vsphere::guarded::GuardedMethods;
use vcguard::vsphere::soap::{SniffState, SoapSniffer};

const LOGIN_SOAP: &[u8] = include_bytes!("../tests/fixtures/soap/pyvmomi-9.1.1.0-Login.xml");
const RETRIEVE_SOAP: &[u8] =
    include_bytes!("../tests/fixtures/soap/pyvmomi-8.0.3.0-RetrievePropertiesEx.xml");
const ENTER_SOAP: &[u8] =
    include_bytes!("../tests/fixtures/soap/pyvmomi-9.1.1.0-EnterMaintenanceMode_Task.xml");
const LOCKDOWN_SOAP: &[u8] =
    include_bytes!("../tests/fixtures/soap/pyvmomi-9.1.1.0-ChangeLockdownMode.xml");
const STOP_DCUI_SOAP: &[u8] = include_bytes!("../tests/fixtures/soap/effect-StopService-DCUI.xml");
const HOST_PROFILE_SOAP: &[u8] =
    include_bytes!("../tests/fixtures/soap/effect-ApplyHostConfig_Task-DCUI-off.xml");
const VMODL_STOP_SOAP: &[u8] =
    include_bytes!("../tests/fixtures/soap/effect-ExecuteSoap-ServiceSystem-stop.xml");
const DAILY_TASK_SOAP: &[u8] =
    include_bytes!("../tests/fixtures/soap/effect-CreateScheduledTask-daily.xml");
const STOP_DCUI_PATH: &str = "/sdk/vim25/8.0.3.0/HostServiceSystem/serviceSystem-21/StopService";
const ENTER_JSON: &[u8] = include_bytes!("../tests/fixtures/json/EnterMaintenanceMode_Task.json");
const LOCKDOWN_JSON: &[u8] = include_bytes!("../tests/fixtures/json/ChangeLockdownMode.json");

const ENTER_PATH: &str = "/sdk/vim25/8.0.3.0/HostSystem/host-42/EnterMaintenanceMode_Task";
const LOCKDOWN_PATH: &str =
    "/sdk/vim25/8.0.3.0/HostAccessManager/ha-host-access-manager/ChangeLockdownMode";

fn sniff(body: &[u8]) {
    let mut sniffer = SoapSniffer::new(64 * 1024);
    if let Ok(SniffState::Identified(head)) = sniffer.feed(body) {
        black_box(operation_from_soap_head(&head));
    }
}

fn vim_json(path: &str, body: &[u8], guarded: &GuardedMethods) {
    if let Ok(PathClass::VimJson(vim)) = classify_path(path) {
        let op = classify_vim_json(vim, &http::Method::POST, Some(body), guarded);
        black_box(op.ok());
    }
}

fn benches(c: &mut Criterion) {
    let guarded = GuardedMethods::new();

    c.bench_function("path/vi_json_guarded", |b| {
        b.iter(|| classify_path(black_box(ENTER_PATH)))
    });
    c.bench_function("path/encoded_mo_id", |b| {
        b.iter(|| {
            classify_path(black_box(
                "/sdk/vim25/8.0.3.0/Datastore/%5Bds1%5D%20vm/summary",
            ))
        })
    });

    c.bench_function("soap/sniff_unguarded_login", |b| {
        b.iter(|| sniff(black_box(LOGIN_SOAP)))
    });
    c.bench_function("soap/sniff_unguarded_retrieve_properties", |b| {
        b.iter(|| sniff(black_box(RETRIEVE_SOAP)))
    });
    c.bench_function("soap/sniff_and_tail_guard_login", |b| {
        b.iter(|| {
            let mut sniffer = SoapSniffer::new(64 * 1024);
            let split = LOGIN_SOAP.len() / 2;
            let _ = sniffer.feed(black_box(&LOGIN_SOAP[..split]));
            let _ = sniffer.feed(black_box(&LOGIN_SOAP[split..]));
            if let Ok(guard) = sniffer.tail_guard() {
                black_box(guard.finish().is_ok());
            }
        })
    });

    c.bench_function("soap/guarded_enter_maintenance_mode", |b| {
        b.iter(|| classify_soap(black_box(ENTER_SOAP), &guarded))
    });
    c.bench_function("soap/guarded_change_lockdown_mode", |b| {
        b.iter(|| classify_soap(black_box(LOCKDOWN_SOAP), &guarded))
    });

    for (name, body) in [
        ("soap/effect_stop_service_dcui", STOP_DCUI_SOAP),
        ("soap/effect_apply_host_config", HOST_PROFILE_SOAP),
        ("soap/effect_vmodl_service_stop", VMODL_STOP_SOAP),
        ("soap/carrier_daily_scheduled_task", DAILY_TASK_SOAP),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| classify_soap(black_box(body), &guarded))
        });
    }
    c.bench_function("json/effect_stop_service_dcui", |b| {
        b.iter(|| vim_json(STOP_DCUI_PATH, black_box(br#"{"id":"DCUI"}"#), &guarded))
    });
    for (name, target) in [
        (
            "path/lifecycle_rest_apply",
            "/api/esx/settings/clusters/domain-c7/software?action=apply&vmw-task=true",
        ),
        // What every other REST call now costs on its way through (the gateway's classify step).
        ("path/rest_pass_through", "/api/vcenter/vm?names=web-01"),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                classify_path(black_box(target))
                    .ok()
                    .map(|_| vcguard::vsphere::lifecycle::classify_rest(black_box(target)))
            })
        });
    }

    c.bench_function("json/guarded_enter_maintenance_mode", |b| {
        b.iter(|| vim_json(ENTER_PATH, black_box(ENTER_JSON), &guarded))
    });
    c.bench_function("json/guarded_change_lockdown_mode", |b| {
        b.iter(|| vim_json(LOCKDOWN_PATH, black_box(LOCKDOWN_JSON), &guarded))
    });
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
