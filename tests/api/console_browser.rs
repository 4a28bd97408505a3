//! The console in a real browser: Debian's headless Chromium driven through its chromedriver
//! (fantoccini), against the real application. A missing browser fails these tests; they
//! never skip. Every page visited is written as a 1280 px wide screenshot under
//! `target/screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::console::{link_token, org_with_enrolled_owner};
use crate::helpers::{OPERATOR, TestApp, spawn_app, token_in, wait_for};

/// A chromedriver of its own on a free port, and a headless Chromium session on it.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    async fn start() -> Browser {
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let driver = tokio::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `{driver_bin}` ({e}): install Debian's chromium and \
                     chromium-driver (scripts/test does)"
                )
            });
        let url = format!("http://127.0.0.1:{port}");
        wait_for(20, "chromedriver to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        let mut caps = serde_json::Map::new();
        let mut chrome = json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions",
            ],
        });
        if let Ok(bin) = std::env::var("CHROMIUM") {
            chrome["binary"] = json!(bin);
        } else if std::path::Path::new("/usr/bin/chromium").exists() {
            chrome["binary"] = json!("/usr/bin/chromium");
        }
        caps.insert("goog:chromeOptions".into(), chrome);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("no Chromium session from chromedriver: {e}"));
        client.set_window_size(1280, 900).await.unwrap();
        Browser {
            client,
            _driver: driver,
        }
    }

    async fn goto(&self, app: &TestApp, path: &str) {
        self.client.goto(&app.url(path)).await.unwrap();
    }

    /// Waits for an element (an explicit wait, up to 10 s).
    async fn el(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    /// Waits until the element's text contains `needle` (and, when given, lacks `absent`).
    async fn wait_text(&self, css: &str, needle: &str, absent: Option<&str>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
                && t.contains(needle)
                && absent.is_none_or(|a| !t.contains(a))
            {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let src = self.client.source().await.unwrap_or_default();
                panic!("`{css}` never showed `{needle}` (without {absent:?}):\n{src}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.el(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.el(css).await.click().await.unwrap();
    }

    /// Writes the page as `target/screenshots/NAME.png`.
    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// Signs the owner of `slug` in through the browser with the emailed link.
async fn sign_in(b: &Browser, app: &TestApp, slug: &str, email: &str) {
    b.goto(app, "/console/").await;
    b.el("#send-link").await;
    b.shot("sign-in").await;
    b.fill("#org", slug).await;
    b.fill("#email", email).await;
    b.click("#send-link").await;
    b.wait_text("#sent", "sign-in link is on its way", None)
        .await;
    let mail = app.delivered_email(slug, email).await;
    let token = link_token(&mail, "/console/sign-in/");
    b.goto(app, &format!("/console/sign-in/{token}")).await;
    b.click("#confirm-sign-in").await;
    b.el("#members").await;
}

#[tokio::test]
async fn in_the_browser_an_admin_signs_in_lists_searches_pages_resends_and_signs_out() {
    let app = spawn_app().await;
    let admin = org_with_enrolled_owner(&app, "acme").await;
    let r = app
        .patch(
            "/api/v1/orgs/acme",
            OPERATOR,
            json!({"resend_cooldown_secs": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let emails: Vec<String> = (0..60).map(|i| format!("p{i:02}@acme.example")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let ids = app.add("acme", &admin, &refs).await;
    let b = Browser::start().await;

    sign_in(&b, &app, "acme", "owner@acme.example").await;
    b.wait_text("#view-all", "61", None).await;
    b.shot("members").await;

    // Search (htmx swaps the table in place; the form also works without it).
    b.fill("#q", "p42").await;
    b.click("#apply").await;
    b.wait_text("#members", "p42@acme.example", Some("p41@acme.example"))
        .await;
    b.shot("members-search").await;

    // A view, a sort, then the next page.
    b.goto(&app, "/console/orgs/acme/members?view=invited&sort=email")
        .await;
    b.wait_text("#members", "p00@acme.example", Some("owner@"))
        .await;
    b.click("#next-page").await;
    b.wait_text("#members", "p55@acme.example", Some("p00@acme.example"))
        .await;
    b.shot("members-page-2").await;

    // Select two and resend.
    b.click(&format!("#m-{}", ids[50])).await;
    b.click(&format!("#m-{}", ids[51])).await;
    b.click("#resend").await;
    b.wait_text("#notice", "2 sent, 0 skipped", None).await;
    b.shot("members-resent").await;
    let resent: Vec<String> = app
        .outbox("acme")
        .await
        .into_iter()
        .filter(|m| m.kind == "resend")
        .map(|m| m.to_address)
        .collect();
    assert_eq!(resent.len(), 2, "{resent:?}");
    assert!(
        resent.contains(&"p50@acme.example".to_owned()),
        "{resent:?}"
    );

    // A form whose CSRF token was tampered with is refused, and nothing is sent.
    b.goto(&app, "/console/orgs/acme/members").await;
    b.click(&format!("#m-{}", ids[59])).await;
    b.client
        .execute(
            "document.querySelector('#member-form input[name=csrf]').value = 'forged';",
            vec![],
        )
        .await
        .unwrap();
    b.click("#resend").await;
    b.wait_text("main", "This form cannot be accepted", None)
        .await;
    assert_eq!(
        app.outbox("acme")
            .await
            .iter()
            .filter(|m| m.kind == "resend")
            .count(),
        2
    );

    // Another org's page: not found.
    app.org_with_admin("globex").await;
    b.goto(&app, "/console/orgs/globex/members").await;
    b.wait_text("#message", "There is no such organization", None)
        .await;

    // Sign out: the session is over.
    b.goto(&app, "/console/orgs/acme/members").await;
    b.click("#sign-out").await;
    b.el("#send-link").await;
    b.goto(&app, "/console/orgs/acme/members").await;
    b.el("#send-link").await;
    assert!(b.client.find(Locator::Css("#members")).await.is_err());
    b.close().await;
}

#[tokio::test]
async fn in_the_browser_a_managed_org_refuses_removal_and_an_invitee_accepts_from_the_email() {
    let app = spawn_app().await;
    let admin = org_with_enrolled_owner(&app, "acme").await;
    app.add("acme", &admin, &["ada@acme.example"]).await;
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": "Okta"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = Browser::start().await;

    // The invitee, from the emailed link.
    let mail = app.delivered_email("acme", "ada@acme.example").await;
    let token = token_in(&mail);
    b.goto(&app, &format!("/invite/{token}")).await;
    b.el("#accept").await;
    b.shot("invite").await;
    b.click("#accept").await;
    b.wait_text("#welcome", "ada@acme.example", None).await;
    b.shot("invite-accepted").await;

    // The owner sees the banner, the person enrolled, and removal unavailable with the reason.
    sign_in(&b, &app, "acme", "owner@acme.example").await;
    b.wait_text("#managed-banner", "Okta", None).await;
    b.goto(&app, "/console/orgs/acme/members?view=enrolled")
        .await;
    b.wait_text("#members", "ada@acme.example", None).await;
    let remove = b.el("#remove").await;
    assert_eq!(
        remove.attr("disabled").await.unwrap().as_deref(),
        Some("true")
    );
    b.wait_text("#remove-locked", "remove the person in Okta", None)
        .await;
    b.shot("members-managed").await;

    // The member's own page: details, the status trail, the audit log.
    b.click("#members td.name a").await;
    b.wait_text("#trail", "enrolled", None).await;
    b.wait_text("#facts", "ada@acme.example", None).await;
    b.shot("member-detail").await;

    // On a phone.
    b.client.set_window_size(390, 844).await.unwrap();
    b.goto(&app, "/console/orgs/acme/members").await;
    b.el("#members").await;
    b.shot("members-phone").await;
    b.close().await;
}
