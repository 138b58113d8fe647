//! The web console in a real browser: Debian's chromium driven through chromedriver
//! (WebDriver, `fantoccini`). The approver logs in, approves the administrator's pending
//! request, and finds the approval in the audit view. Screenshots go to the test's temporary
//! directory (kept; their paths are printed).
//!
//! Without chromium and chromedriver the test prints `SKIPPED: …` and passes, unless
//! `VCGUARD_REQUIRE_CHROMIUM=1` is set: then it fails.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::console::{
    APPROVER, APPROVER_NAME, console_options, lockdown, refused_lockdown_request,
};
use common::{ADMIN_PASSWORD, Harness};
use fantoccini::{ClientBuilder, Locator};

/// The chromedriver process, ended when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// chromium and chromedriver, or why the test cannot run.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let chromium = find_program(&["chromium", "chromium-browser"])
        .ok_or("chromium is not installed (apt-get install chromium)")?;
    let driver = find_program(&["chromedriver"])
        .ok_or("chromedriver is not installed (apt-get install chromium-driver)")?;
    Ok((chromium, driver))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_driver(driver: &Path) -> Driver {
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on port {port} within 10 s");
}

async fn screenshot(client: &fantoccini::Client, dir: &Path, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("screenshot");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    println!("screenshot: {}", path.display());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approver_approves_in_the_console_and_sees_it_in_the_audit_view() {
    let (chromium, driver_path) = match browser() {
        Ok(found) => found,
        Err(why) => {
            if std::env::var("VCGUARD_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
                panic!("VCGUARD_REQUIRE_CHROMIUM=1 but {why}");
            }
            println!("SKIPPED: chromium/chromedriver not installed: {why}");
            return;
        }
    };
    let policies = tempfile::tempdir().expect("policies");
    let harness = Harness::start_with(console_options(policies.path())).await;
    // The administrator's call is refused with a pending approval request.
    let api_client = harness.client();
    let admin = harness.login(&api_client).await;
    let id = refused_lockdown_request(&harness, &api_client, &admin).await;
    let shots = tempfile::Builder::new()
        .prefix("vcguard-console-screenshots-")
        .tempdir()
        .expect("screenshot dir")
        .keep();

    let driver = start_driver(&driver_path).await;
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--ignore-certificate-errors", "--window-size=1280,1000",
            ],
        }),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session");
    let base = harness.base();

    // Not logged in: the console sends the browser to its login page.
    client
        .goto(&format!("{base}/vcguard/ui/approvals"))
        .await
        .expect("goto");
    assert!(
        client
            .current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/vcguard/ui/login"),
        "redirected to the login page"
    );
    client
        .find(Locator::Id("user-name"))
        .await
        .expect("user field")
        .send_keys(APPROVER)
        .await
        .expect("type user");
    client
        .find(Locator::Id("password"))
        .await
        .expect("password field")
        .send_keys(ADMIN_PASSWORD)
        .await
        .expect("type password");
    screenshot(&client, &shots, "1-login").await;
    client
        .find(Locator::Id("login-button"))
        .await
        .expect("login button")
        .click()
        .await
        .expect("log in");

    // The pending request, with the approve form (the approver is in change-approvers).
    let card = client
        .wait()
        .for_element(Locator::Id(&id))
        .await
        .expect("the pending request is shown");
    let url = client.current_url().await.expect("url");
    assert!(url.path().ends_with("/vcguard/ui/approvals"), "{url}");
    assert!(url.query().is_none(), "no secret in the URL: {url}");
    let user = client
        .find(Locator::Id("user"))
        .await
        .expect("user")
        .text()
        .await
        .expect("text");
    assert_eq!(user, APPROVER_NAME);
    let source = client.source().await.expect("page source");
    assert!(
        !source.contains("vmware_soap_session"),
        "the session never appears in a page"
    );
    card.find(Locator::Css("textarea[name=comment]"))
        .await
        .expect("comment field")
        .send_keys("approved in the browser test")
        .await
        .expect("type comment");
    screenshot(&client, &shots, "2-pending").await;
    card.find(Locator::Css("button.approve"))
        .await
        .expect("approve button")
        .click()
        .await
        .expect("approve");

    let notice = client
        .wait()
        .for_element(Locator::Id("notice"))
        .await
        .expect("a notice")
        .text()
        .await
        .expect("text");
    assert!(notice.contains(&format!("Approved {id}")), "{notice}");
    let row = client
        .find(Locator::Id(&format!("row-{id}")))
        .await
        .expect("the decided request is listed")
        .text()
        .await
        .expect("text");
    assert!(
        row.contains("approved") && row.contains(APPROVER_NAME),
        "{row}"
    );
    screenshot(&client, &shots, "3-approved").await;

    // The audit view shows the approval, and the chain is intact.
    client
        .goto(&format!("{base}/vcguard/ui/audit"))
        .await
        .expect("audit page");
    let chain = client
        .find(Locator::Id("chain"))
        .await
        .expect("chain status")
        .text()
        .await
        .expect("text");
    assert!(chain.contains("chain intact"), "{chain}");
    let records = client
        .find(Locator::Id("records"))
        .await
        .expect("records")
        .text()
        .await
        .expect("text");
    assert!(
        records.lines().any(|line| line.contains("approved")
            && line.contains(&id)
            && line.contains(APPROVER_NAME)),
        "the approval is in the audit view:\n{records}"
    );
    screenshot(&client, &shots, "4-audit").await;

    // The administrator's retry now passes, once.
    let (status, text) =
        lockdown(&harness, &api_client, &admin, "ham-21", "lockdownDisabled").await;
    assert!(
        (200..300).contains(&status),
        "the approved call passes: {status} {text}"
    );
    assert_eq!(
        harness.sim().simulator.lockdown_mode("ham-21").as_deref(),
        Some("lockdownDisabled")
    );

    // A form posted without the CSRF token is refused; logging out ends the session.
    client
        .goto(&format!("{base}/vcguard/ui/claims"))
        .await
        .expect("claims page");
    client
        .find(Locator::Id("ticket"))
        .await
        .expect("ticket field")
        .send_keys("CHG0012345")
        .await
        .expect("type");
    client
        .find(Locator::Id("hosts"))
        .await
        .expect("hosts field")
        .send_keys("host-21")
        .await
        .expect("type");
    client
        .execute(
            "document.querySelector('#new-claim input[name=csrf]').value = 'forged';",
            vec![],
        )
        .await
        .expect("tamper");
    client
        .find(Locator::Css("#new-claim button[type=submit]"))
        .await
        .expect("claim button")
        .click()
        .await
        .expect("submit");
    let refused = client
        .wait()
        .for_element(Locator::Id("notice"))
        .await
        .expect("notice")
        .text()
        .await
        .expect("text");
    assert!(refused.contains("CSRF"), "{refused}");
    client
        .goto(&format!("{base}/vcguard/ui/claims"))
        .await
        .expect("claims page");
    client
        .find(Locator::Css("form.logout button"))
        .await
        .expect("logout")
        .click()
        .await
        .expect("log out");
    client
        .wait()
        .for_element(Locator::Id("login"))
        .await
        .expect("back at the login page");
    client
        .goto(&format!("{base}/vcguard/ui/approvals"))
        .await
        .expect("goto");
    assert!(
        client
            .current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/vcguard/ui/login"),
        "logged out"
    );
    client.close().await.expect("close the browser");
    drop(driver);
    println!("screenshots in {}", shots.display());
}
