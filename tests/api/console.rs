//! The web console and the invitee's pages over HTTP, as a browser without JavaScript uses them:
//! form posts with the page's CSRF token and the cookies the server set.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::helpers::{OPERATOR, TestApp, spawn_app, wait_for};

/// A cookie-keeping client that does not follow redirects.
pub struct Web<'a> {
    pub app: &'a TestApp,
    client: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub text: String,
}

impl Page {
    /// The value of the page's first hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let at = self
            .text
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in {}", self.text))
            + "name=\"csrf\" value=\"".len();
        self.text[at..].chars().take_while(|c| *c != '"').collect()
    }
}

impl<'a> Web<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Web {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    async fn finish(&self, res: reqwest::Response) -> Page {
        let status = res.status().as_u16();
        for v in res.headers().get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.lock().unwrap().remove(k);
            } else {
                self.set_cookie(k, val);
            }
        }
        let location = res
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let text = res.text().await.unwrap();
        Page {
            status,
            location,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let res = self
            .client
            .get(self.app.url(path))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(res).await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let res = self
            .client
            .post(self.app.url(path))
            .header(COOKIE, self.cookie_header())
            .form(fields)
            .send()
            .await
            .unwrap();
        self.finish(res).await
    }
}

/// The token after `marker` in an email's text.
pub fn link_token(text: &str, marker: &str) -> String {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {text}"))
        + marker.len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// An org whose owner (`owner@{slug}.example`) has accepted the invitation; its admin token.
pub async fn org_with_enrolled_owner(app: &TestApp, slug: &str) -> String {
    let admin = app.org_with_admin(slug).await;
    let r = app
        .accept(slug, &format!("owner@{slug}.example"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    admin
}

/// Signs `email` of `slug` in through the emailed link; the signed-in client.
pub async fn sign_in<'a>(app: &'a TestApp, slug: &str, email: &str) -> Web<'a> {
    let web = Web::new(app);
    let page = web.get("/console/").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let page = web
        .post(
            "/console/sign-in/email",
            &[("csrf", &page.csrf()), ("org", slug), ("email", email)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("sign-in link is on its way"),
        "{}",
        page.text
    );
    let mail = app.delivered_email(slug, email).await;
    let token = link_token(&mail, "/console/sign-in/");
    let page = web.get(&format!("/console/sign-in/{token}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let page = web
        .post(
            &format!("/console/sign-in/{token}"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(
        page.location.as_deref(),
        Some(format!("/console/orgs/{slug}/members").as_str())
    );
    assert!(web.cookie("rosterd_session").is_some());
    web
}

async fn audit_actions(app: &TestApp, slug: &str) -> Vec<(String, String)> {
    let id = app.org_id(slug).await;
    let mut tx = app.store.read().await.unwrap();
    let rows = rosterd::store::audit::page(&mut tx, id, None, 10_000)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    rows.into_iter().map(|r| (r.action, r.actor_kind)).collect()
}

#[tokio::test]
async fn an_invitee_accepts_on_the_invitation_page_and_is_enrolled() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    app.add("acme", &admin, &["ada@acme.example"]).await;
    let token = app.invitation_token("acme", "ada@acme.example").await;
    let web = Web::new(&app);

    let page = web.get(&format!("/invite/{token}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Org acme"), "{}", page.text);
    assert!(page.text.contains("ada@acme.example"), "{}", page.text);
    assert!(
        page.text.contains("<label for=\"login_email\""),
        "{}",
        page.text
    );

    // Without the page's token the post is refused and nothing changes.
    let before = app.snapshot("acme").await;
    let refused = web
        .post(&format!("/invite/{token}"), &[("login_email", "")])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let forged = web
        .post(&format!("/invite/{token}"), &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.text);
    // A bad sign-in address: the operation's own message, next to the field.
    let bad = web
        .post(
            &format!("/invite/{token}"),
            &[("csrf", &page.csrf()), ("login_email", "not an address")],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(
        bad.text.contains("id=\"login_email-error\""),
        "{}",
        bad.text
    );
    assert!(
        bad.text.contains("value=\"not an address\""),
        "{}",
        bad.text
    );
    assert_eq!(app.snapshot("acme").await, before);

    let done = web
        .post(
            &format!("/invite/{token}"),
            &[("csrf", &page.csrf()), ("login_email", "ada@login.example")],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.text.contains("You are a member"), "{}", done.text);
    assert!(done.text.contains("Org acme"), "{}", done.text);

    let r = app
        .get("/api/v1/orgs/acme/members?email=ada@acme.example", &admin)
        .await;
    assert_eq!(r.body["items"][0]["access"], "enrolled", "{}", r.text);
    assert_eq!(r.body["items"][0]["login_email"], "ada@login.example");
    let audit = audit_actions(&app, "acme").await;
    assert!(
        audit
            .iter()
            .any(|(a, k)| a == "member.enrolled" && k == "invitee"),
        "{audit:?}"
    );

    // The link afterwards: a clear page, no form.
    let again = web.get(&format!("/invite/{token}")).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert!(
        again.text.contains("already been accepted"),
        "{}",
        again.text
    );
    assert!(!again.text.contains("id=\"accept-form\""), "{}", again.text);
}

#[tokio::test]
async fn invitation_pages_for_unknown_expired_and_cancelled_links_say_so() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["ada@acme.example", "bob@acme.example"])
        .await;
    let ada = app.invitation_token("acme", "ada@acme.example").await;
    let bob = app.invitation_token("acme", "bob@acme.example").await;
    let web = Web::new(&app);

    // An unknown token names no org.
    let page = web.get("/invite/not-a-real-token").await;
    assert_eq!(page.status, 404, "{}", page.text);
    assert!(!page.text.contains("acme"), "{}", page.text);
    assert!(page.text.contains("not valid"), "{}", page.text);

    // Cancelled.
    let r = app
        .post(
            "/api/v1/orgs/acme/members/cancel-invitations",
            &admin,
            json!({"member_ids": [ids[1]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let page = web.get(&format!("/invite/{bob}")).await;
    assert_eq!(page.status, 410, "{}", page.text);
    assert!(page.text.contains("was cancelled"), "{}", page.text);
    assert!(!page.text.contains("id=\"accept-form\""), "{}", page.text);

    // Expired: the page says so, and a post shows the operation's own refusal.
    let page = web.get(&format!("/invite/{ada}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let csrf = page.csrf();
    app.clock.advance(chrono::Duration::days(400));
    let page = web.get(&format!("/invite/{ada}")).await;
    assert_eq!(page.status, 410, "{}", page.text);
    assert!(page.text.contains("has expired"), "{}", page.text);
    let post = web
        .post(&format!("/invite/{ada}"), &[("csrf", &csrf)])
        .await;
    assert_eq!(post.status, 410, "{}", post.text);
    assert!(
        post.text
            .contains("this invitation link has expired; ask an admin to resend the invitation"),
        "{}",
        post.text
    );
}

#[tokio::test]
async fn the_invite_link_page_takes_the_unlock_code_and_the_address() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/invite-links",
            &admin,
            json!({"description": "Autumn course", "code": "OPEN-SESAME"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let url = r.body["url"].as_str().unwrap().to_owned();
    let token = link_token(&url, "/invite-links/");
    let web = Web::new(&app);

    let page = web.get(&format!("/invite-links/{token}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Org acme"), "{}", page.text);
    assert!(page.text.contains("Autumn course"), "{}", page.text);

    let wrong = web
        .post(
            &format!("/invite-links/{token}"),
            &[
                ("csrf", &page.csrf()),
                ("code", "guess"),
                ("email", "cy@acme.example"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 403, "{}", wrong.text);
    assert!(wrong.text.contains("id=\"code-error\""), "{}", wrong.text);
    assert!(wrong.text.contains("wrong code"), "{}", wrong.text);

    let ok = web
        .post(
            &format!("/invite-links/{token}"),
            &[
                ("csrf", &page.csrf()),
                ("code", "OPEN-SESAME"),
                ("email", "cy@acme.example"),
            ],
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert!(ok.text.contains("You are a member"), "{}", ok.text);
    let r = app
        .get("/api/v1/orgs/acme/members?email=cy@acme.example", &admin)
        .await;
    assert_eq!(r.body["items"][0]["access"], "enrolled", "{}", r.text);

    let unknown = web.get("/invite-links/nope").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert!(!unknown.text.contains("acme"), "{}", unknown.text);
}

#[tokio::test]
async fn the_join_page_asks_the_orgs_questions_and_verifies_the_address() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/orgs/acme/join",
            Some(&admin),
            Some(json!({
                "enabled": true,
                "slug": "acme-club",
                "allowed_domains": ["club.example"],
                "questions": [
                    {"id": "level", "label": "Your level", "kind": "single_choice",
                     "required": true, "options": ["Beginner", "Expert"]},
                    {"id": "adult", "label": "Are you 18 or older?", "kind": "yes_no"}
                ]
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let web = Web::new(&app);
    let page = web.get("/join/acme-club").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Your level"), "{}", page.text);
    assert!(
        page.text.contains("<option>Expert</option>"),
        "{}",
        page.text
    );

    // The required answer missing, and an address from elsewhere: both named in place.
    let bad = web
        .post(
            "/join/acme-club",
            &[("csrf", &page.csrf()), ("email", "eve@other.example")],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.text.contains("id=\"email-error\""), "{}", bad.text);
    assert!(
        bad.text
            .contains("this organization does not accept join requests from this address"),
        "{}",
        bad.text
    );
    assert!(
        app.outbox("acme")
            .await
            .iter()
            .all(|m| m.kind != "join_verify")
    );

    let ok = web
        .post(
            "/join/acme-club",
            &[
                ("csrf", &page.csrf()),
                ("email", "dee@club.example"),
                ("given_name", "Dee"),
                ("answers.level", "Expert"),
                ("answers.adult", "yes"),
            ],
        )
        .await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    assert!(ok.text.contains("Check your inbox"), "{}", ok.text);
    let mail = app.delivered_email("acme", "dee@club.example").await;
    let token = link_token(&mail, "/join/verify/");
    let landing = web.get(&format!("/join/verify/{token}")).await;
    assert_eq!(landing.status, 200, "{}", landing.text);
    let done = web
        .post(
            &format!("/join/verify/{token}"),
            &[("csrf", &landing.csrf())],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.text.contains("You are a member"), "{}", done.text);
    let r = app
        .get("/api/v1/orgs/acme/members?email=dee@club.example", &admin)
        .await;
    assert_eq!(r.body["items"][0]["access"], "enrolled", "{}", r.text);

    let closed = web.get("/join/no-such-page").await;
    assert_eq!(closed.status, 404, "{}", closed.text);
}

#[tokio::test]
async fn an_owner_signs_in_by_email_link_and_the_link_works_once() {
    let app = spawn_app().await;
    org_with_enrolled_owner(&app, "acme").await;
    let web = sign_in(&app, "acme", "owner@acme.example").await;
    let page = web.get("/console/orgs/acme/members").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("owner@acme.example"), "{}", page.text);
    // Signed in, the sign-in page sends the browser on.
    let home = web.get("/console/").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location.as_deref(), Some("/console/orgs/acme/members"));

    // The link again, from another browser: used.
    let mail = app.delivered_email("acme", "owner@acme.example").await;
    let token = link_token(&mail, "/console/sign-in/");
    let other = Web::new(&app);
    let p = other.get(&format!("/console/sign-in/{token}")).await;
    let again = other
        .post(&format!("/console/sign-in/{token}"), &[("csrf", &p.csrf())])
        .await;
    assert_eq!(again.status, 410, "{}", again.text);
    assert!(again.text.contains("already been used"), "{}", again.text);
    assert!(other.cookie("rosterd_session").is_none());

    // Someone who is not an admin gets the same answer and no email.
    let p = other.get("/console/").await;
    let asked = other
        .post(
            "/console/sign-in/email",
            &[
                ("csrf", &p.csrf()),
                ("org", "acme"),
                ("email", "stranger@acme.example"),
            ],
        )
        .await;
    assert_eq!(asked.status, 200, "{}", asked.text);
    assert!(asked.text.contains("sign-in link is on its way"));
    assert!(
        app.outbox("acme")
            .await
            .iter()
            .all(|m| m.to_address != "stranger@acme.example")
    );
    let bad = other
        .post(
            "/console/sign-in/email",
            &[("csrf", &p.csrf()), ("org", "acme"), ("email", "nope")],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.text.contains("id=\"email-error\""), "{}", bad.text);

    let audit = audit_actions(&app, "acme").await;
    assert!(
        audit
            .iter()
            .any(|(a, k)| a == "console.signed_in" && k == "console"),
        "{audit:?}"
    );

    // An expired link.
    let p = other.get("/console/").await;
    other
        .post(
            "/console/sign-in/email",
            &[
                ("csrf", &p.csrf()),
                ("org", "acme"),
                ("email", "owner@acme.example"),
            ],
        )
        .await;
    wait_for(10, "a second sign-in email", || async {
        app.outbox("acme")
            .await
            .iter()
            .filter(|m| m.kind == "console_sign_in" && m.sent_at.is_some())
            .count()
            == 2
    })
    .await;
    let mail = app.delivered_email("acme", "owner@acme.example").await;
    let token = link_token(&mail, "/console/sign-in/");
    app.clock.advance(chrono::Duration::minutes(16));
    let p = other.get(&format!("/console/sign-in/{token}")).await;
    let late = other
        .post(&format!("/console/sign-in/{token}"), &[("csrf", &p.csrf())])
        .await;
    assert_eq!(late.status, 410, "{}", late.text);
    assert!(late.text.contains("has expired"), "{}", late.text);
}

#[tokio::test]
async fn sessions_end_on_sign_out_idle_time_and_demotion() {
    let app = spawn_app().await;
    let admin = org_with_enrolled_owner(&app, "acme").await;
    // An admin member, enrolled.
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "ann@acme.example", "role": "admin"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ann_id = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.accept("acme", "ann@acme.example", None).await.status,
        200
    );

    // Sign-out.
    let web = sign_in(&app, "acme", "ann@acme.example").await;
    let page = web.get("/console/orgs/acme/members").await;
    assert_eq!(page.status, 200);
    let stolen = web.cookie("rosterd_session").unwrap();
    let out = web
        .post("/console/sign-out", &[("csrf", &page.csrf())])
        .await;
    assert_eq!(out.status, 303, "{}", out.text);
    assert!(web.cookie("rosterd_session").is_none());
    web.set_cookie("rosterd_session", &stolen);
    let after = web.get("/console/orgs/acme/members").await;
    assert_eq!(after.status, 303);
    assert_eq!(after.location.as_deref(), Some("/console/"));

    // Idle expiry.
    let web = sign_in(&app, "acme", "ann@acme.example").await;
    app.clock.advance(chrono::Duration::minutes(31));
    let idle = web.get("/console/orgs/acme/members").await;
    assert_eq!(idle.status, 303);
    assert_eq!(idle.location.as_deref(), Some("/console/"));

    // Demoted: the session ends at the next request.
    let web = sign_in(&app, "acme", "ann@acme.example").await;
    assert_eq!(web.get("/console/orgs/acme/members").await.status, 200);
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{ann_id}"),
            &admin,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let gone = web.get("/console/orgs/acme/members").await;
    assert_eq!(gone.status, 303, "{}", gone.text);
    // And it stays ended when the role comes back.
    app.patch(
        &format!("/api/v1/orgs/acme/members/{ann_id}"),
        &admin,
        json!({"role": "admin"}),
    )
    .await;
    web.set_cookie("rosterd_session", &stolen);
    assert_eq!(web.get("/console/orgs/acme/members").await.status, 303);

    let audit = audit_actions(&app, "acme").await;
    assert!(
        audit.iter().any(|(a, _)| a == "console.signed_out"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn an_admin_sees_only_their_org_and_every_post_needs_the_csrf_token() {
    let app = spawn_app().await;
    let admin = org_with_enrolled_owner(&app, "acme").await;
    let other = app.org_with_admin("globex").await;
    let globex_ids = app.add("globex", &other, &["gus@globex.example"]).await;
    let ids = app.add("acme", &admin, &["ada@acme.example"]).await;
    let web = sign_in(&app, "acme", "owner@acme.example").await;
    let page = web.get("/console/orgs/acme/members").await;
    let csrf = page.csrf();

    // Another org: not found, exactly like a missing one; its members untouched.
    let there = web.get("/console/orgs/globex/members").await;
    assert_eq!(there.status, 404, "{}", there.text);
    assert!(!there.text.contains("gus@"), "{}", there.text);
    let missing = web.get("/console/orgs/nowhere/members").await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        web.get("/console/orgs/globex/members.csv").await.status,
        404
    );
    let before = app.snapshot("globex").await;
    let r = web
        .post(
            "/console/orgs/globex/members/remove",
            &[("csrf", &csrf), ("member", &globex_ids[0].to_string())],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    // Naming another org's member from one's own org: skipped as not found.
    let r = web
        .post(
            "/console/orgs/acme/members/remove",
            &[("csrf", &csrf), ("member", &globex_ids[0].to_string())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(app.snapshot("globex").await, before);

    // No token, a wrong token: refused, nothing changed.
    let before = app.snapshot("acme").await;
    let r = web
        .post(
            "/console/orgs/acme/members/remove",
            &[("member", &ids[0].to_string())],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = web
        .post(
            "/console/orgs/acme/members/remove",
            &[("csrf", "x"), ("member", &ids[0].to_string())],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(app.snapshot("acme").await, before);
    // Signed out, a post is refused too.
    let anon = Web::new(&app);
    let r = anon
        .post(
            "/console/orgs/acme/members/remove",
            &[("csrf", &csrf), ("member", &ids[0].to_string())],
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(app.snapshot("acme").await, before);

    // With the token: removed, audited as the console.
    let r = web
        .post(
            "/console/orgs/acme/members/remove",
            &[("csrf", &csrf), ("member", &ids[0].to_string())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let r = app
        .get("/api/v1/orgs/acme/members?access=removed", &admin)
        .await;
    assert_eq!(r.body["items"][0]["member_email"], "ada@acme.example");
    let audit = audit_actions(&app, "acme").await;
    assert!(
        audit
            .iter()
            .any(|(a, k)| a == "member.removed" && k == "console"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn the_members_page_lists_searches_filters_and_pages() {
    let app = spawn_app().await;
    let admin = org_with_enrolled_owner(&app, "acme").await;
    let emails: Vec<String> = (0..60).map(|i| format!("p{i:02}@acme.example")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    app.add("acme", &admin, &refs).await;
    let web = sign_in(&app, "acme", "owner@acme.example").await;

    let page = web.get("/console/orgs/acme/members?sort=email").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("p00@acme.example"), "{}", page.text);
    assert!(!page.text.contains("p55@acme.example"));
    // Views with counts: 60 invited + the owner.
    assert!(
        page.text.contains("All <span class=\"count\">61</span>"),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains("Invited <span class=\"count\">60</span>")
    );
    // Keyset paging.
    let at = page
        .text
        .find("id=\"next-page\"")
        .expect("a next page link");
    let href_at = page.text[..at].rfind("href=\"").unwrap() + 6;
    let href: String = page.text[href_at..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    let href = href.replace("&#38;", "&").replace("&amp;", "&");
    let next = web.get(&format!("/console/orgs/acme/members{href}")).await;
    assert_eq!(next.status, 200, "{}", next.text);
    assert!(next.text.contains("p55@acme.example"), "{}", next.text);
    assert!(!next.text.contains("p00@acme.example"));

    // Search and filters.
    let found = web.get("/console/orgs/acme/members?q=p42").await;
    assert!(found.text.contains("p42@acme.example"));
    assert!(!found.text.contains("p41@acme.example"));
    let owners = web.get("/console/orgs/acme/members?role=owner").await;
    assert!(owners.text.contains("owner@acme.example"));
    assert!(!owners.text.contains("p01@acme.example"));
    let enrolled = web.get("/console/orgs/acme/members?view=enrolled").await;
    assert!(enrolled.text.contains("owner@acme.example"));
    assert!(!enrolled.text.contains("p01@acme.example"));
    // A bad filter: named next to its field, not a crash.
    let bad = web
        .get("/console/orgs/acme/members?joined_from=yesterday")
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(
        bad.text.contains("id=\"joined_from-error\""),
        "{}",
        bad.text
    );
    let bad = web.get("/console/orgs/acme/members?view=nonsense").await;
    assert_eq!(bad.status, 400, "{}", bad.text);

    // The CSV export.
    let csv = web.get("/console/orgs/acme/members.csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv.text.contains("p59@acme.example"), "{}", csv.text);
}

#[tokio::test]
async fn resending_from_the_members_page_mails_the_selected_and_all_in_view() {
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
    let ids = app
        .add(
            "acme",
            &admin,
            &["a@acme.example", "b@acme.example", "c@acme.example"],
        )
        .await;
    let web = sign_in(&app, "acme", "owner@acme.example").await;
    let page = web.get("/console/orgs/acme/members").await;
    let csrf = page.csrf();
    let sent_to = |who: &'static str| {
        let app = &app;
        async move {
            app.outbox("acme")
                .await
                .iter()
                .filter(|m| m.to_address == who && m.kind == "resend")
                .count()
        }
    };

    let r = web
        .post(
            "/console/orgs/acme/members/resend",
            &[
                ("csrf", &csrf),
                ("member", &ids[0].to_string()),
                ("member", &ids[1].to_string()),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let back = web.get(r.location.as_deref().unwrap()).await;
    assert!(back.text.contains("2 sent, 0 skipped"), "{}", back.text);
    assert_eq!(sent_to("a@acme.example").await, 1);
    assert_eq!(sent_to("c@acme.example").await, 0);

    // Nothing selected: said next to the actions.
    let r = web
        .post("/console/orgs/acme/members/resend", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("select at least one member"), "{}", r.text);

    // Every member in the invited view (the owner, enrolled, is not in it).
    let r = web
        .post(
            "/console/orgs/acme/members/resend",
            &[("csrf", &csrf), ("all_in_view", "1"), ("view", "invited")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let back = web.get(r.location.as_deref().unwrap()).await;
    assert!(back.text.contains("3 sent, 0 skipped"), "{}", back.text);
    assert_eq!(sent_to("c@acme.example").await, 1);
    let audit = audit_actions(&app, "acme").await;
    assert!(
        audit
            .iter()
            .any(|(a, k)| a == "member.invite_resent" && k == "console"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_managed_org_shows_the_banner_and_refuses_removal_with_the_reason() {
    let app = spawn_app().await;
    let admin = org_with_enrolled_owner(&app, "acme").await;
    let ids = app.add("acme", &admin, &["ada@acme.example"]).await;
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": "Okta"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let web = sign_in(&app, "acme", "owner@acme.example").await;
    let page = web.get("/console/orgs/acme/members").await;
    assert!(page.text.contains("id=\"managed-banner\""), "{}", page.text);
    assert!(page.text.contains("<strong>Okta</strong>"), "{}", page.text);
    assert!(
        page.text.contains("id=\"remove\" disabled"),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("remove the person in Okta"),
        "{}",
        page.text
    );

    let before = app.snapshot("acme").await;
    let r = web
        .post(
            "/console/orgs/acme/members/remove",
            &[("csrf", &page.csrf()), ("member", &ids[0].to_string())],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("id=\"action-error\""), "{}", r.text);
    assert!(
        r.text
            .contains("membership of this organization is managed by Okta"),
        "{}",
        r.text
    );
    assert_eq!(app.snapshot("acme").await, before);
}

#[tokio::test]
async fn the_operator_signs_in_with_the_token_and_wrong_tokens_are_rate_limited() {
    let app = spawn_app().await;
    app.org_with_admin("acme").await;
    app.org_with_admin("globex").await;
    let web = Web::new(&app);
    let page = web.get("/console/").await;
    let csrf = page.csrf();
    let wrong = web
        .post(
            "/console/sign-in/operator",
            &[("csrf", &csrf), ("token", "nope")],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert!(wrong.text.contains("id=\"token-error\""), "{}", wrong.text);
    let ok = web
        .post(
            "/console/sign-in/operator",
            &[("csrf", &csrf), ("token", OPERATOR)],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text);
    let orgs = web.get("/console/orgs").await;
    assert_eq!(orgs.status, 200);
    assert!(orgs.text.contains("Org acme") && orgs.text.contains("Org globex"));
    assert_eq!(web.get("/console/orgs/globex/members").await.status, 200);

    // Guessing: the budget runs out, then even the right token waits.
    let other = Web::new(&app);
    let page = other.get("/console/").await;
    let mut limited = false;
    for _ in 0..40 {
        let r = other
            .post(
                "/console/sign-in/operator",
                &[("csrf", &page.csrf()), ("token", "guess")],
            )
            .await;
        if r.status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "wrong operator tokens are never limited");
    let r = other
        .post(
            "/console/sign-in/operator",
            &[("csrf", &page.csrf()), ("token", OPERATOR)],
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
}

#[tokio::test]
async fn console_pages_carry_their_assets_and_safety_headers() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/console/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("/console/static/htmx-2.0.11.min.js"));
    let js = app
        .client
        .get(app.url("/console/static/htmx-2.0.11.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let body = js.bytes().await.unwrap();
    use sha2::Digest;
    let sum = sha2::Sha256::digest(&body);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex, "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
        "the served htmx is the vendored, recorded file"
    );
    let css = app
        .client
        .get(app.url("/console/static/console.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(
        app.client
            .get(app.url("/console/static/nope.js"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // The session cookie's attributes.
    app.org_with_admin("acme").await;
    let web = Web::new(&app);
    let p = web.get("/console/").await;
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/console/sign-in/operator"))
        .header(
            "cookie",
            format!("rosterd_csrf={}", web.cookie("rosterd_csrf").unwrap()),
        )
        .form(&[("csrf", p.csrf().as_str()), ("token", OPERATOR)])
        .send()
        .await
        .unwrap();
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("rosterd_session="), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain http public_url: {set}");
}

#[tokio::test]
async fn the_member_page_shows_the_detail_trail_and_audit_of_one_member() {
    let app = spawn_app().await;
    let admin = org_with_enrolled_owner(&app, "acme").await;
    let ids = app.add("acme", &admin, &["ada@acme.example"]).await;
    let other = app.org_with_admin("globex").await;
    let theirs = app.add("globex", &other, &["gus@globex.example"]).await;
    assert_eq!(
        app.accept("acme", "ada@acme.example", Some("ada@login.example"))
            .await
            .status,
        200
    );
    let web = sign_in(&app, "acme", "owner@acme.example").await;

    let list = web.get("/console/orgs/acme/members").await;
    assert!(
        list.text
            .contains(&format!("href=\"/console/orgs/acme/members/{}\"", ids[0])),
        "{}",
        list.text
    );
    let page = web
        .get(&format!("/console/orgs/acme/members/{}", ids[0]))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("ada@login.example"), "{}", page.text);
    let trail_at = page.text.find("id=\"trail\"").unwrap();
    let trail = &page.text[trail_at..];
    assert!(trail.contains("<strong>invited</strong>"), "{trail}");
    assert!(trail.contains("<strong>enrolled</strong>"), "{trail}");
    assert!(page.text.contains("member.enrolled"), "{}", page.text);

    // Another org's member, or no member at all: not found.
    let r = web
        .get(&format!("/console/orgs/acme/members/{}", theirs[0]))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(!r.text.contains("gus@"), "{}", r.text);
    assert_eq!(web.get("/console/orgs/acme/members/nope").await.status, 404);
}

#[tokio::test]
async fn behind_an_https_public_url_the_cookies_are_secure() {
    let app = crate::helpers::spawn_with(crate::helpers::Mail::Files, |c| {
        c.server.public_url = "https://roster.example".into();
    })
    .await;
    let web = Web::new(&app);
    let res = reqwest::Client::new()
        .get(app.url("/console/"))
        .send()
        .await
        .unwrap();
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.starts_with("rosterd_csrf=") && set.contains("; Secure"),
        "{set}"
    );
    let page = web.get("/console/").await;
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/console/sign-in/operator"))
        .header(
            "cookie",
            format!("rosterd_csrf={}", web.cookie("rosterd_csrf").unwrap()),
        )
        .form(&[("csrf", page.csrf().as_str()), ("token", OPERATOR)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("rosterd_session="), "{set}");
    assert!(
        set.contains("; Secure") && set.contains("HttpOnly"),
        "{set}"
    );
}
