//! The SCIM 2.0 service provider over HTTP: discovery, auth and org boundary, the member
//! lifecycle, filters and paging, PATCH/PUT with ETags, Bulk, and the request shapes real
//! identity providers send.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

impl TestApp {
    pub async fn scim(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Res {
        self.scim_with(method, path, token, body, &[]).await
    }

    pub async fn scim_with(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Res {
        let mut req = self
            .client
            .request(method, self.url(&format!("/scim/v2{path}")))
            .bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        Res {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// An org with an admin token and a SCIM token (named after the identity provider).
    pub async fn scim_org(&self, slug: &str) -> (String, String) {
        let admin = self.org_with_admin(slug).await;
        let r = self
            .post(
                &format!("/api/v1/orgs/{slug}/tokens"),
                OPERATOR,
                json!({"kind": "scim", "name": "Okta"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        (admin, r.body["token"].as_str().unwrap().to_owned())
    }
}

fn assert_scim_error(r: &Res, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(
        r.headers["content-type"], "application/scim+json",
        "{}",
        r.text
    );
    assert_eq!(
        r.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{}",
        r.text
    );
    assert_eq!(r.body["status"], status.to_string(), "{}", r.text);
    if let Some(t) = scim_type {
        assert_eq!(r.body["scimType"], t, "{}", r.text);
    }
}

fn user(name: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": name,
        "name": {"givenName": "Given", "familyName": "Family"},
        "emails": [{"value": name, "type": "work", "primary": true}],
        "active": true
    })
}

async fn create_user(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app.scim(Method::POST, "/Users", token, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

#[tokio::test]
async fn discovery_endpoints_describe_the_service() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let r = app
        .scim(Method::GET, "/ServiceProviderConfig", &scim, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/scim+json");
    assert_eq!(r.body["patch"]["supported"], true);
    assert_eq!(r.body["bulk"]["maxOperations"], 1000);
    assert_eq!(r.body["bulk"]["maxPayloadSize"], 1048576);
    assert_eq!(r.body["etag"]["supported"], true);
    assert_eq!(r.body["filter"]["maxResults"], 1000);
    let r = app.scim(Method::GET, "/Schemas", &scim, None).await;
    let ids: Vec<&str> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [USER, ENTERPRISE, GROUP]);
    let r = app
        .scim(Method::GET, &format!("/Schemas/{USER}"), &scim, None)
        .await;
    let attrs = r.body["attributes"].as_array().unwrap();
    let user_name = attrs.iter().find(|a| a["name"] == "userName").unwrap();
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["caseExact"], false);
    let password = attrs.iter().find(|a| a["name"] == "password").unwrap();
    assert_eq!(password["returned"], "never");
    let r = app.scim(Method::GET, "/ResourceTypes", &scim, None).await;
    assert_eq!(r.body["totalResults"], 2);
    let r = app
        .scim(Method::GET, "/ResourceTypes/User", &scim, None)
        .await;
    assert_eq!(r.body["schemaExtensions"][0]["schema"], ENTERPRISE);
}

#[tokio::test]
async fn tokens_pick_the_org_and_mark_it_managed() {
    let app = spawn_app().await;
    let (admin_a, scim_a) = app.scim_org("org-a").await;
    let (_, scim_b) = app.scim_org("org-b").await;
    let ua = create_user(&app, &scim_a, user("ann@a.example")).await;
    let ub = create_user(&app, &scim_b, user("bob@b.example")).await;
    let a_id = ua["id"].as_str().unwrap();
    let b_id = ub["id"].as_str().unwrap();
    // Org A's token sees only org A.
    let r = app
        .scim(Method::GET, "/Users?count=1000", &scim_a, None)
        .await;
    assert!(!r.text.contains("bob@b.example"), "{}", r.text);
    assert_scim_error(
        &app.scim(Method::GET, &format!("/Users/{b_id}"), &scim_a, None)
            .await,
        404,
        None,
    );
    assert_scim_error(
        &app.scim(
            Method::PUT,
            &format!("/Users/{b_id}"),
            &scim_a,
            Some(user("x@a.example")),
        )
        .await,
        404,
        None,
    );
    assert_scim_error(
        &app.scim(Method::DELETE, &format!("/Users/{b_id}"), &scim_a, None)
            .await,
        404,
        None,
    );
    let patch = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    assert_scim_error(
        &app.scim(
            Method::PATCH,
            &format!("/Users/{b_id}"),
            &scim_a,
            Some(patch),
        )
        .await,
        404,
        None,
    );
    let r = app
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22bob@b.example%22",
            &scim_a,
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 0);
    // A group in A cannot take B's user.
    let r = app
        .scim(
            Method::POST,
            "/Groups",
            &scim_a,
            Some(json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": b_id}]})),
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let r = app
        .scim(Method::GET, &format!("/Users/{a_id}"), &scim_b, None)
        .await;
    assert_eq!(r.status, 404);
    // Missing and wrong tokens; an admin token is not a SCIM token.
    let r = app
        .client
        .get(app.url("/scim/v2/Users"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_scim_error(
        &app.scim(Method::GET, "/Users", "nope", None).await,
        401,
        None,
    );
    assert_scim_error(
        &app.scim(Method::GET, "/Users", &admin_a, None).await,
        403,
        None,
    );
    // The first SCIM token made the org integration-managed, named after the client.
    let org = app.get("/api/v1/orgs/org-a", &admin_a).await;
    assert_eq!(org.body["managed_by"], "Okta");
    let r = app
        .delete(&format!("/api/v1/orgs/org-a/members/{a_id}"), &admin_a)
        .await;
    assert_problem(&r, 409);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("remove the person in Okta")
    );
}

#[tokio::test]
async fn user_lifecycle_follows_the_state_machine() {
    let app = spawn_app().await;
    let (admin, scim) = app.scim_org("acme").await;
    let mut body = user("Ada@Acme.example");
    body["password"] = json!("Placeholder-Okta-1!");
    body["externalId"] = json!("00u1");
    body["title"] = json!("Engineer");
    body["nickName"] = Value::Null;
    let r = app.scim(Method::POST, "/Users", &scim, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.headers["location"],
        format!("{}/scim/v2/Users/{id}", app.base)
    );
    assert_eq!(
        r.headers["etag"],
        r.body["meta"]["version"].as_str().unwrap()
    );
    assert_eq!(r.body["meta"]["resourceType"], "User");
    assert_eq!(r.body["title"], "Engineer");
    assert!(r.body.get("password").is_none(), "password never returned");
    assert!(r.body.get("nickName").is_none(), "null treated as absent");
    // The member is invited and got an invitation (the org's default setting).
    let m = app
        .get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
        .await;
    assert_eq!(m.body["access"], "invited");
    assert_eq!(m.body["name"], "Given Family");
    assert!(
        app.outbox("acme")
            .await
            .iter()
            .any(|o| o.to_address == "Ada@Acme.example")
    );
    // The password was not stored anywhere.
    let id_uuid: uuid::Uuid = id.parse().unwrap();
    let org_id = app.org_id("acme").await;
    let mut tx = app.store.read().await.unwrap();
    let row = rosterd::store::members::by_id(&mut tx, org_id, id_uuid, false)
        .await
        .unwrap()
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        !row.scim_data.unwrap().contains("Placeholder"),
        "password stored"
    );

    // Okta deactivates with a full PUT: removed, but still readable with active false.
    let mut put = r.body.clone();
    put["active"] = json!(false);
    let r = app
        .scim(Method::PUT, &format!("/Users/{id}"), &scim, Some(put))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], false);
    let m = app
        .get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
        .await;
    assert_eq!(m.body["access"], "removed");
    assert_eq!(
        app.scim(Method::GET, &format!("/Users/{id}"), &scim, None)
            .await
            .body["active"],
        false
    );
    // Path-less replace reactivates (never enrolled: invited again).
    let r = app.scim(Method::PATCH, &format!("/Users/{id}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": true}}]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], true);
    assert_eq!(
        app.get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
            .await
            .body["access"],
        "invited"
    );
    // Enrolled, then removed and reactivated: enrolled again at once.
    app.accept("acme", "Ada@Acme.example", None).await;
    for active in [false, true] {
        let r = app.scim(Method::PATCH, &format!("/Users/{id}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": active}]}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        app.get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
            .await
            .body["access"],
        "enrolled"
    );
    // DELETE: removed, and 404 from then on.
    let r = app
        .scim(Method::DELETE, &format!("/Users/{id}"), &scim, None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_scim_error(
        &app.scim(Method::GET, &format!("/Users/{id}"), &scim, None)
            .await,
        404,
        None,
    );
    assert_eq!(
        app.get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
            .await
            .body["access"],
        "removed"
    );
    let r = app
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22ada@acme.example%22",
            &scim,
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 0);
    // A later POST with the same userName re-adds that member (it had enrolled: enrolled).
    let r = app
        .scim(
            Method::POST,
            "/Users",
            &scim,
            Some(user("ada@acme.EXAMPLE")),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(
        app.get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
            .await
            .body["access"],
        "enrolled"
    );
    // Every change was audited with the SCIM client as the actor.
    let audit = app.get("/api/v1/orgs/acme/audit?limit=200", &admin).await;
    let by_scim = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"]["kind"] == "scim_client")
        .count();
    assert!(by_scim >= 7, "{by_scim}");
}

#[tokio::test]
async fn usernames_are_unique_case_insensitively() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    create_user(&app, &scim, user("kim@acme.example")).await;
    let mut dup = user("KIM@acme.example");
    dup["emails"] = json!([{"value": "other@acme.example", "primary": true}]);
    assert_scim_error(
        &app.scim(Method::POST, "/Users", &scim, Some(dup)).await,
        409,
        Some("uniqueness"),
    );
    let missing = json!({"schemas": [USER], "emails": [{"value": "x@acme.example"}]});
    assert_scim_error(
        &app.scim(Method::POST, "/Users", &scim, Some(missing)).await,
        400,
        Some("invalidValue"),
    );
}

#[tokio::test]
async fn sso_orgs_enroll_provisioned_members_without_email() {
    let app = spawn_app().await;
    let (admin, scim) = app.scim_org("acme").await;
    let r = app
        .patch(
            "/api/v1/orgs/acme",
            &admin,
            json!({"scim_new_members": "enroll"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = create_user(&app, &scim, user("sso@acme.example")).await;
    let m = app
        .get(
            &format!("/api/v1/orgs/acme/members/{}", u["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    assert_eq!(m.body["access"], "enrolled");
    assert!(
        !app.outbox("acme")
            .await
            .iter()
            .any(|o| o.to_address == "sso@acme.example")
    );
    let r = app
        .patch(
            "/api/v1/orgs/acme",
            &admin,
            json!({"scim_new_members": "sometimes"}),
        )
        .await;
    assert_problem(&r, 422);
}

async fn seed_directory(app: &TestApp, scim: &str) -> Vec<String> {
    let people = [
        (
            "bjensen@example.com",
            "Barbara",
            "Jensen",
            "Employee",
            "701984",
            "Sales",
        ),
        (
            "jsmith@example.com",
            "John",
            "Smith",
            "Intern",
            "701985",
            "Sales",
        ),
        (
            "akhan@example.org",
            "Amir",
            "Khan",
            "Employee",
            "701986",
            "Research",
        ),
        (
            "mlee@example.org",
            "Mei",
            "Lee",
            "Contractor",
            "701987",
            "Research",
        ),
    ];
    let mut ids = Vec::new();
    for (u, g, f, ty, num, dept) in people {
        let body = json!({
            "schemas": [USER, ENTERPRISE],
            "userName": u,
            "name": {"givenName": g, "familyName": f},
            "userType": ty,
            "emails": [{"value": u, "type": "work", "primary": true}, {"value": format!("{g}@home.example").to_lowercase(), "type": "home"}],
            ENTERPRISE: {"employeeNumber": num, "department": dept}
        });
        ids.push(
            create_user(app, scim, body).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        app.clock.advance(chrono::Duration::seconds(10));
    }
    ids
}

async fn names(app: &TestApp, scim: &str, query: &str) -> Vec<String> {
    let r = app
        .scim(Method::GET, &format!("/Users?{query}"), scim, None)
        .await;
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_owned())
        .collect()
}

fn q(filter: &str) -> String {
    format!("filter={}", urlencode(filter))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn filters_sorting_paging_and_projection() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    seed_directory(&app, &scim).await;
    let cases: &[(&str, &[&str])] = &[
        (
            r#"userName eq "BJENSEN@example.com""#,
            &["bjensen@example.com"],
        ),
        (r#"userName sw "j""#, &["jsmith@example.com"]),
        (
            r#"userName ew ".org""#,
            &["akhan@example.org", "mlee@example.org"],
        ),
        (
            r#"name.familyName co "e""#,
            &["bjensen@example.com", "mlee@example.org"],
        ),
        (
            r#"userType eq "Employee" and emails[type eq "work" and value co "example.org"]"#,
            &["akhan@example.org"],
        ),
        (
            r#"userType ne "Employee" and not (emails.value co "example.org")"#,
            &["owner@acme.example", "jsmith@example.com"], // `ne` holds where userType is absent
        ),
        (
            r#"(userType eq "Intern" or userType eq "Contractor") and name.givenName pr"#,
            &["jsmith@example.com", "mlee@example.org"],
        ),
        (
            r#"emails[type eq "home"].value sw "mei""#,
            &["mlee@example.org"],
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "research""#,
            &["akhan@example.org", "mlee@example.org"],
        ),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "mlee@example.org""#,
            &["mlee@example.org"],
        ),
        (
            r#"meta.created gt "2026-03-02T09:00:15Z""#,
            &["akhan@example.org", "mlee@example.org"],
        ),
        (r#"title pr"#, &[]),
        (
            r#"userName eq "owner@acme.example" or userName eq "mlee@example.org""#,
            &["owner@acme.example", "mlee@example.org"],
        ),
        (
            r#"active eq true and userName sw "a""#,
            &["akhan@example.org"],
        ),
    ];
    for (filter, want) in cases {
        let got = names(&app, &scim, &format!("{}&sortBy=id", q(filter))).await;
        assert_eq!(got, *want, "{filter}");
    }
    // sortBy / sortOrder.
    let got = names(
        &app,
        &scim,
        "sortBy=name.familyName&sortOrder=descending&filter=userType%20pr",
    )
    .await;
    assert_eq!(
        got,
        [
            "jsmith@example.com",
            "mlee@example.org",
            "akhan@example.org",
            "bjensen@example.com"
        ]
    );
    let got = names(&app, &scim, "sortBy=userName").await;
    assert_eq!(got[0], "akhan@example.org");
    // startIndex/count with integer totals and a stable order.
    let r = app
        .scim(Method::GET, "/Users?startIndex=2&count=2", &scim, None)
        .await;
    assert_eq!(r.body["totalResults"], 5);
    assert_eq!(r.body["startIndex"], 2);
    assert_eq!(r.body["itemsPerPage"], 2);
    let page2: Vec<String> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    let all = app.scim(Method::GET, "/Users?count=100", &scim, None).await;
    let all_ids: Vec<String> = all.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(page2, all_ids[1..3]);
    let r = app.scim(Method::GET, "/Users?count=0", &scim, None).await;
    assert_eq!(r.body["totalResults"], 5);
    assert_eq!(r.body["Resources"].as_array().unwrap().len(), 0);
    // Projection.
    let r = app.scim(Method::GET, "/Users?attributes=userName,name.givenName&filter=userName%20eq%20%22mlee@example.org%22", &scim, None).await;
    let u = &r.body["Resources"][0];
    assert_eq!(u["userName"], "mlee@example.org");
    assert_eq!(u["name"], json!({"givenName": "Mei"}));
    assert!(u.get("emails").is_none() && u.get("id").is_some() && u.get("meta").is_some());
    let r = app.scim(Method::GET, "/Users?excludedAttributes=emails,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", &scim, None).await;
    let u = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userName"] == "mlee@example.org")
        .unwrap()
        .clone();
    assert!(u.get("emails").is_none());
    assert_eq!(u[ENTERPRISE], json!({"employeeNumber": "701987"}));
    // POST .search does the same.
    let r = app.scim(Method::POST, "/Users/.search", &scim, Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userType eq \"Intern\"", "attributes": ["userName"]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 1);
    // Entra's connection test: a random userName gets an empty list, not an error.
    let r = app
        .scim(
            Method::GET,
            &format!(
                "/Users?{}",
                q(r#"userName eq "e2c4c5c8-25d9-4f5c-8b5a-1f5e0b3a2d9f""#)
            ),
            &scim,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));
    // Invalid filters are 400 invalidFilter, never 500.
    for bad in [
        "userName eq",
        "userName xx \"a\"",
        "(userName pr",
        "emails[type eq \"work\"",
        "userName eq \"a\" or",
        "\u{0}",
    ] {
        let r = app
            .scim(Method::GET, &format!("/Users?{}", q(bad)), &scim, None)
            .await;
        assert_scim_error(&r, 400, Some("invalidFilter"));
    }
}

#[tokio::test]
async fn etags_guard_writes_and_reads() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let u = create_user(&app, &scim, user("e@acme.example")).await;
    let id = u["id"].as_str().unwrap();
    let v1 = u["meta"]["version"].as_str().unwrap().to_owned();
    let r = app
        .scim_with(
            Method::GET,
            &format!("/Users/{id}"),
            &scim,
            None,
            &[("if-none-match", &v1)],
        )
        .await;
    assert_eq!(r.status, 304);
    let patch = json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "title", "value": "Boss"}]});
    let r = app
        .scim_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            &scim,
            Some(patch.clone()),
            &[("if-match", &v1)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v2 = r.headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(v1, v2);
    // The old version no longer matches: 412, nothing changes.
    let r = app
        .scim_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            &scim,
            Some(patch),
            &[("if-match", &v1)],
        )
        .await;
    assert_scim_error(&r, 412, None);
    let r = app
        .scim_with(
            Method::PUT,
            &format!("/Users/{id}"),
            &scim,
            Some(user("e@acme.example")),
            &[("if-match", &v1)],
        )
        .await;
    assert_scim_error(&r, 412, None);
    let r = app
        .scim_with(
            Method::DELETE,
            &format!("/Users/{id}"),
            &scim,
            None,
            &[("if-match", &v1)],
        )
        .await;
    assert_scim_error(&r, 412, None);
    let r = app
        .scim_with(
            Method::GET,
            &format!("/Users/{id}"),
            &scim,
            None,
            &[("if-none-match", &v1)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["title"], "Boss");
}

#[tokio::test]
async fn entra_id_request_shapes() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    // Probe before create.
    let r = app
        .scim(
            Method::GET,
            &format!("/Users?{}", q(r#"userName eq "alex@acme.example""#)),
            &scim,
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 0);
    let boss = create_user(&app, &scim, user("boss@acme.example")).await;
    let boss_id = boss["id"].as_str().unwrap().to_owned();
    let body = json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": "alex",
        "userName": "alex@acme.example",
        "active": "True",
        "displayName": "Alex Doe",
        "emails": [{"primary": true, "type": "work", "value": "alex@acme.example"}],
        "name": {"formatted": "Alex Doe", "familyName": "Doe", "givenName": "Alex"},
        ENTERPRISE: {"employeeNumber": "42", "department": "Ops", "manager": boss_id}
    });
    let u = create_user(&app, &scim, body).await;
    let id = u["id"].as_str().unwrap().to_owned();
    assert_eq!(u["active"], true);
    assert_eq!(u[ENTERPRISE]["manager"]["value"], boss_id.as_str());
    // Capitalised ops, booleans as strings, URN and dotted keys in a path-less value.
    let r = app.scim(Method::PATCH, &format!("/Users/{id}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "displayName", "value": "Alexandra Doe"},
        {"op": "Add", "value": {"name.givenName": "Alexandra", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Platform"}},
        {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": [{"$ref": null, "value": boss_id}]},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "alexandra@acme.example"}
    ]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["displayName"], "Alexandra Doe");
    assert_eq!(r.body["name"]["givenName"], "Alexandra");
    assert_eq!(r.body[ENTERPRISE]["department"], "Platform");
    assert_eq!(r.body[ENTERPRISE]["manager"]["value"], boss_id.as_str());
    assert_eq!(r.body["emails"][0]["value"], "alexandra@acme.example");
    // "Add" with active as a string deactivates.
    let r = app.scim(Method::PATCH, &format!("/Users/{id}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [{"op": "Add", "path": "active", "value": "False"}]}))).await;
    assert_eq!(r.body["active"], false, "{}", r.text);

    // Groups: the extra Microsoft schema URN, members with "$ref": null.
    let r = app.scim(Method::POST, "/Groups", &scim, Some(json!({
        "schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "displayName": "Engineering",
        "externalId": "eng",
        "members": [{"value": boss_id, "$ref": null}]
    }))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let gid = r.body["id"].as_str().unwrap().to_owned();
    let extra = create_user(&app, &scim, user("c@acme.example")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Add members (one already in: harmless), then the legacy removal of listed members only.
    let r = app.scim(Method::PATCH, &format!("/Groups/{gid}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [
        {"op": "Add", "path": "members", "value": [{"value": id}, {"value": extra}, {"value": boss_id}]}
    ]}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            &scim,
            Some(json!({"schemas": [PATCH], "Operations": [
                {"op": "Remove", "path": "members", "value": [{"value": extra}]}
            ]})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let g = app
        .scim(Method::GET, &format!("/Groups/{gid}"), &scim, None)
        .await;
    let mut members: Vec<&str> = g.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    members.sort();
    let mut want = vec![boss_id.as_str(), id.as_str()];
    want.sort();
    assert_eq!(
        members, want,
        "legacy remove must only remove the listed member"
    );
    // Remove by value filter.
    let r = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            &scim,
            Some(json!({"schemas": [PATCH], "Operations": [
                {"op": "remove", "path": format!("members[value eq \"{boss_id}\"]")}
            ]})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let g = app
        .scim(
            Method::GET,
            &format!("/Groups/{gid}?excludedAttributes=members"),
            &scim,
            None,
        )
        .await;
    assert!(g.body.get("members").is_none());
    let g = app
        .scim(Method::GET, &format!("/Groups/{gid}"), &scim, None)
        .await;
    assert_eq!(g.body["members"].as_array().unwrap().len(), 1);
    // The user shows its groups (read-only).
    let u = app
        .scim(Method::GET, &format!("/Users/{id}"), &scim, None)
        .await;
    assert_eq!(u.body["groups"][0]["display"], "Engineering");
    // Group filter on members.
    let r = app
        .scim(
            Method::GET,
            &format!("/Groups?{}", q(&format!(r#"members[value eq "{id}"]"#))),
            &scim,
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
}

#[tokio::test]
async fn okta_request_shapes() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    for i in 0..120 {
        let mut u = user(&format!("user{i:03}@acme.example"));
        u["password"] = json!("Tmp-Passw0rd!");
        let r = app.scim(Method::POST, "/Users", &scim, Some(u)).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // count=100 paging: integer totals, stable order, every user once.
    let mut seen = std::collections::HashSet::new();
    let mut start = 1;
    loop {
        let r = app
            .scim(
                Method::GET,
                &format!("/Users?startIndex={start}&count=100"),
                &scim,
                None,
            )
            .await;
        assert!(r.body["totalResults"].is_u64());
        let items = r.body["Resources"].as_array().unwrap();
        for u in items {
            assert!(seen.insert(u["id"].as_str().unwrap().to_owned()));
            assert!(u.get("password").is_none());
        }
        if items.len() < 100 {
            break;
        }
        start += 100;
    }
    assert_eq!(seen.len(), 121);
    // Group push: create, rename via PATCH replace and via PUT.
    let r = app
        .scim(
            Method::POST,
            "/Groups",
            &scim,
            Some(json!({"schemas": [GROUP], "displayName": "Old", "members": []})),
        )
        .await;
    let gid = r.body["id"].as_str().unwrap().to_owned();
    let r = app.scim(Method::PATCH, &format!("/Groups/{gid}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"id": gid, "displayName": "Newer"}}]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["displayName"], "Newer");
    let r = app
        .scim(
            Method::PUT,
            &format!("/Groups/{gid}"),
            &scim,
            Some(json!({"schemas": [GROUP], "id": gid, "displayName": "Newest", "members": []})),
        )
        .await;
    assert_eq!(r.body["displayName"], "Newest", "{}", r.text);
    let r = app
        .scim(
            Method::POST,
            "/Groups",
            &scim,
            Some(json!({"schemas": [GROUP], "displayName": "newest"})),
        )
        .await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    let r = app
        .scim(Method::DELETE, &format!("/Groups/{gid}"), &scim, None)
        .await;
    assert_eq!(r.status, 204);
    assert_scim_error(
        &app.scim(Method::GET, &format!("/Groups/{gid}"), &scim, None)
            .await,
        404,
        None,
    );
}

#[tokio::test]
async fn bulk_with_references_and_limits() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let r = app.scim(Method::POST, "/Bulk", &scim, Some(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user("b1@acme.example")},
            {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"schemas": [GROUP], "displayName": "Team", "members": [{"value": "bulkId:u1"}]}},
            {"method": "PATCH", "path": "/Users/bulkId:u1", "data": {"schemas": [PATCH], "Operations": [{"op": "add", "path": "title", "value": "Lead"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "g2", "data": {"schemas": [GROUP], "displayName": "Broken", "members": [{"value": "bulkId:nope"}]}}
        ]
    }))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops[0]["status"], "201");
    assert_eq!(ops[1]["status"], "201");
    assert_eq!(ops[2]["status"], "200");
    assert_eq!(ops[3]["status"], "409");
    let gid = ops[1]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let uid = ops[0]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let g = app
        .scim(Method::GET, &format!("/Groups/{gid}"), &scim, None)
        .await;
    assert_eq!(g.body["members"][0]["value"], uid.as_str());
    // failOnErrors stops after that many errors.
    let r = app.scim(Method::POST, "/Bulk", &scim, Some(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "x", "data": user("b1@acme.example")},
            {"method": "POST", "path": "/Users", "bulkId": "y", "data": user("b2@acme.example")}
        ]
    }))).await;
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["response"]["scimType"], "uniqueness");
    assert_eq!(
        app.scim(
            Method::GET,
            &format!("/Users?{}", q(r#"userName eq "b2@acme.example""#)),
            &scim,
            None
        )
        .await
        .body["totalResults"],
        0
    );
    // More than maxOperations: 413.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
        .collect();
    let r = app.scim(Method::POST, "/Bulk", &scim, Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": many}))).await;
    assert_scim_error(&r, 413, None);
}

#[tokio::test]
async fn malformed_requests_get_scim_errors() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let raw = |body: &'static str, ct: &'static str| {
        let app = &app;
        let scim = scim.clone();
        async move {
            let res = app
                .client
                .post(app.url("/scim/v2/Users"))
                .bearer_auth(scim)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = res.status();
            let headers = res.headers().clone();
            let text = res.text().await.unwrap();
            Res {
                status,
                headers,
                body: serde_json::from_str(&text).unwrap_or_default(),
                text,
            }
        }
    };
    assert_scim_error(
        &raw("{\"userName\":", "application/scim+json").await,
        400,
        Some("invalidSyntax"),
    );
    assert_scim_error(
        &raw("[]", "application/json").await,
        400,
        Some("invalidSyntax"),
    );
    let ok = raw(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"json@acme.example"}"#, "application/json").await;
    assert_eq!(
        ok.status, 201,
        "plain application/json is accepted: {}",
        ok.text
    );
    let id = ok.body["id"].as_str().unwrap().to_owned();
    for (body, ty) in [
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "explode", "path": "title", "value": 1}]}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "emails[type eq", "value": 1}]}),
            "invalidPath",
        ),
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "remove"}]}),
            "noTarget",
        ),
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "emails[value co \"nowhere\"].value", "value": "x"}]}),
            "noTarget",
        ),
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": "maybe"}]}),
            "invalidValue",
        ),
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName", "value": 7}]}),
            "invalidValue",
        ),
    ] {
        let r = app
            .scim(Method::PATCH, &format!("/Users/{id}"), &scim, Some(body))
            .await;
        assert_scim_error(&r, 400, Some(ty));
    }
    assert_scim_error(
        &app.scim(Method::GET, "/Users/not-a-uuid", &scim, None)
            .await,
        404,
        None,
    );
    assert_scim_error(
        &app.scim(Method::GET, "/Nope", &scim, None).await,
        404,
        None,
    );
    assert_scim_error(
        &app.scim(Method::GET, "/Users?sortOrder=sideways", &scim, None)
            .await,
        400,
        Some("invalidValue"),
    );
    assert_scim_error(
        &app.scim(Method::GET, "/Users?count=lots", &scim, None)
            .await,
        400,
        Some("invalidValue"),
    );
}

#[tokio::test]
async fn several_tokens_allow_rotation() {
    let app = spawn_app().await;
    let (admin, old) = app.scim_org("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/tokens",
            OPERATOR,
            json!({"kind": "scim", "name": "Okta (new)"}),
        )
        .await;
    let new = r.body["token"].as_str().unwrap().to_owned();
    let new_id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.scim(Method::GET, "/Users", &old, None).await.status,
        200
    );
    assert_eq!(
        app.scim(Method::GET, "/Users", &new, None).await.status,
        200
    );
    // The second token did not rename the integration.
    assert_eq!(
        app.get("/api/v1/orgs/acme", &admin).await.body["managed_by"],
        "Okta"
    );
    let tokens = app.get("/api/v1/orgs/acme/tokens", &admin).await;
    let old_id = tokens.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Okta")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.delete(&format!("/api/v1/orgs/acme/tokens/{old_id}"), &admin)
            .await
            .status,
        204
    );
    assert_scim_error(
        &app.scim(Method::GET, "/Users", &old, None).await,
        401,
        None,
    );
    assert_eq!(
        app.scim(Method::GET, "/Users", &new, None).await.status,
        200
    );
    assert_ne!(new_id, old_id);
}

#[tokio::test]
async fn silent_provisioning_invites_without_email() {
    let app = spawn_app().await;
    let (admin, scim) = app.scim_org("acme").await;
    app.patch(
        "/api/v1/orgs/acme",
        &admin,
        json!({"scim_new_members": "invite_silently"}),
    )
    .await;
    let u = create_user(&app, &scim, user("quiet@acme.example")).await;
    let m = app
        .get(
            &format!("/api/v1/orgs/acme/members/{}", u["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    assert_eq!(m.body["access"], "invited");
    assert!(
        !app.outbox("acme")
            .await
            .iter()
            .any(|o| o.to_address == "quiet@acme.example")
    );
}

#[tokio::test]
async fn okta_pathless_deactivation() {
    let app = spawn_app().await;
    let (admin, scim) = app.scim_org("acme").await;
    let u = create_user(&app, &scim, user("okta@acme.example")).await;
    let id = u["id"].as_str().unwrap();
    let r = app.scim(Method::PATCH, &format!("/Users/{id}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false}}]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], false);
    assert_eq!(
        app.get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
            .await
            .body["access"],
        "removed"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_a_scim_error() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let mut big = user("big@acme.example");
    big["title"] = json!("x".repeat(1024 * 1024 + 10));
    assert_scim_error(
        &app.scim(Method::POST, "/Users", &scim, Some(big)).await,
        413,
        None,
    );
    let r = app
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22big@acme.example%22",
            &scim,
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 0);
}

/// Arbitrary JSON thrown at every SCIM write endpoint: never a 5xx.
#[tokio::test]
async fn arbitrary_json_never_causes_a_server_error() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let uid = create_user(&app, &scim, user("target@acme.example")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gid = app
        .scim(
            Method::POST,
            "/Groups",
            &scim,
            Some(json!({"schemas": [GROUP], "displayName": "T"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut runner = TestRunner::deterministic();
    let strategy = json_strategy();
    for i in 0..150 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        let (method, path) = match i % 8 {
            0 => (Method::POST, "/Users".to_owned()),
            1 => (Method::PUT, format!("/Users/{uid}")),
            2 => (Method::PATCH, format!("/Users/{uid}")),
            3 => (Method::POST, "/Groups".to_owned()),
            4 => (Method::PATCH, format!("/Groups/{gid}")),
            5 => (Method::PUT, format!("/Groups/{gid}")),
            6 => (Method::POST, "/Bulk".to_owned()),
            _ => (Method::POST, "/.search".to_owned()),
        };
        let r = app
            .scim(method.clone(), &path, &scim, Some(body.clone()))
            .await;
        assert!(
            r.status.as_u16() < 500,
            "{method} {path} with {body}: {}",
            r.text
        );
    }
}

fn json_strategy() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop_oneof![
        Just("userName"),
        Just("emails"),
        Just("value"),
        Just("active"),
        Just("members"),
        Just("displayName"),
        Just("Operations"),
        Just("op"),
        Just("path"),
        Just("schemas"),
        Just("method"),
        Just("data"),
        Just("bulkId"),
        Just("filter"),
        Just("name"),
        Just("x"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "\\PC{0,16}".prop_map(Value::String),
        Just(json!("a@b.co")),
        Just(json!("replace")),
        Just(json!("/Users")),
        Just(json!(PATCH)),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

#[tokio::test]
async fn a_post_never_takes_over_someone_else() {
    let app = spawn_app().await;
    let (admin, scim) = app.scim_org("acme").await;
    // The owner (added by hand at org creation) cannot be captured or deactivated by email.
    let mut grab = user("someone-else");
    grab["emails"] = json!([{"value": "owner@acme.example", "primary": true}]);
    grab["active"] = json!(false);
    assert_scim_error(
        &app.scim(Method::POST, "/Users", &scim, Some(grab)).await,
        409,
        None,
    );
    let owner = app
        .get("/api/v1/orgs/acme/members?role=owner", &admin)
        .await;
    assert_eq!(owner.body["items"][0]["access"], "invited");
    // A SCIM user cannot be captured through its email by another userName.
    create_user(&app, &scim, user("alice@acme.example")).await;
    let mut bob = user("bob");
    bob["emails"] = json!([{"value": "alice@acme.example", "primary": true}]);
    assert_scim_error(
        &app.scim(Method::POST, "/Users", &scim, Some(bob)).await,
        409,
        Some("uniqueness"),
    );
    // A member added by hand before the identity provider was connected is adopted.
    let hand = app.add("acme", &admin, &["hand@acme.example"]).await[0];
    let u = create_user(&app, &scim, user("hand@acme.example")).await;
    assert_eq!(u["id"], hand.to_string());
}

#[tokio::test]
async fn patch_edge_cases_real_clients_hit() {
    let app = spawn_app().await;
    let (admin, scim) = app.scim_org("acme").await;
    let id = create_user(&app, &scim, user("edge@acme.example")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Entra ID: "Add" through a value filter on an attribute the user does not have yet.
    let r = app.scim(Method::PATCH, &format!("/Users/{id}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [
        {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555 0100"}
    ]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["phoneNumbers"],
        json!([{"type": "work", "value": "+1 555 0100"}])
    );
    // A new primary email takes the mark from the old one, and invitations follow it.
    let r = app.scim(Method::PATCH, &format!("/Users/{id}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "emails", "value": [{"value": "new@acme.example", "type": "work", "primary": true}]}
    ]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let primaries = r.body["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["primary"] == true)
        .count();
    assert_eq!(primaries, 1, "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
            .await
            .body["member_email"],
        "new@acme.example"
    );
    // A PUT that does not mention `active` keeps the member's state.
    app.scim(Method::PATCH, &format!("/Users/{id}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]}))).await;
    let mut put = user("edge@acme.example");
    put.as_object_mut().unwrap().remove("active");
    put["emails"] = json!([{"value": "new@acme.example", "primary": true}]);
    let r = app
        .scim(Method::PUT, &format!("/Users/{id}"), &scim, Some(put))
        .await;
    assert_eq!(r.body["active"], false, "{}", r.text);
    // `ne` on an absent attribute matches, like `not (eq)`.
    let r = app
        .scim(
            Method::GET,
            &format!("/Users?{}", q(r#"title ne "Boss""#)),
            &scim,
            None,
        )
        .await;
    let n = app
        .scim(
            Method::GET,
            &format!("/Users?{}", q(r#"not (title eq "Boss")"#)),
            &scim,
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], n.body["totalResults"]);
    assert!(r.body["totalResults"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn deletion_and_groups() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let a = create_user(&app, &scim, user("a@acme.example")).await;
    let aid = a["id"].as_str().unwrap().to_owned();
    let v1 = a["meta"]["version"].as_str().unwrap().to_owned();
    let g = app
        .scim(
            Method::POST,
            "/Groups",
            &scim,
            Some(json!({"schemas": [GROUP], "displayName": "G"})),
        )
        .await;
    let gid = g.body["id"].as_str().unwrap().to_owned();
    // Joining a group changes the user's ETag (its `groups` changed).
    let r = app.scim(Method::PATCH, &format!("/Groups/{gid}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": aid}]}]}))).await;
    assert_eq!(r.status, 204);
    let r = app
        .scim_with(
            Method::GET,
            &format!("/Users/{aid}"),
            &scim,
            None,
            &[("if-none-match", &v1)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["groups"][0]["value"], gid.as_str());
    // Operations apply in order: add then remove leaves the member out.
    let b = create_user(&app, &scim, user("b@acme.example")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .scim(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            &scim,
            Some(json!({"schemas": [PATCH], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": b}]},
                {"op": "remove", "path": format!("members[value eq \"{b}\"]")}
            ]})),
        )
        .await;
    assert_eq!(r.status, 204);
    let g = app
        .scim(Method::GET, &format!("/Groups/{gid}"), &scim, None)
        .await;
    let members: Vec<&str> = g.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members, [aid.as_str()]);
    // A deleted user leaves its groups, and a re-create does not bring them back.
    assert_eq!(
        app.scim(Method::DELETE, &format!("/Users/{aid}"), &scim, None)
            .await
            .status,
        204
    );
    let again = create_user(&app, &scim, user("a@acme.example")).await;
    assert_eq!(again["id"], aid.as_str());
    assert!(again.get("groups").is_none(), "{again}");
    let g = app
        .scim(Method::GET, &format!("/Groups/{gid}"), &scim, None)
        .await;
    assert_eq!(g.body["members"], json!([]));
    // A deleted user's userName can be taken by a live one.
    assert_eq!(
        app.scim(Method::DELETE, &format!("/Users/{aid}"), &scim, None)
            .await
            .status,
        204
    );
    let r = app.scim(Method::PATCH, &format!("/Users/{b}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName", "value": "a@acme.example"}]}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["userName"], "a@acme.example");
}

#[tokio::test]
async fn bulk_forward_references() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let r = app.scim(Method::POST, "/Bulk", &scim, Some(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"schemas": [GROUP], "displayName": "Early", "members": [{"value": "bulkId:later"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "later", "data": user("later@acme.example")},
            {"method": "POST", "path": "/Groups", "bulkId": "c1", "data": {"schemas": [GROUP], "displayName": "C1", "members": [{"value": "bulkId:c2"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "c2", "data": {"schemas": [GROUP], "displayName": "C2", "members": [{"value": "bulkId:c1"}]}}
        ]
    }))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let status = |b: &str| {
        r.body["Operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["bulkId"] == b)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status("later"), "201");
    assert_eq!(status("g"), "201");
    assert_eq!(status("c1"), "409", "circular references fail");
    assert_eq!(status("c2"), "409");
    let groups = app
        .scim(
            Method::GET,
            &format!("/Groups?{}", q(r#"displayName eq "Early""#)),
            &scim,
            None,
        )
        .await;
    assert_eq!(
        groups.body["Resources"][0]["members"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_deleted_member_moves_its_groups_version_and_bad_projection_params_are_refused() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let uid = create_user(&app, &scim, user("x@acme.example")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let g = app
        .scim(
            Method::POST,
            "/Groups",
            &scim,
            Some(json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": uid}]})),
        )
        .await;
    let gid = g.body["id"].as_str().unwrap().to_owned();
    let v = g.body["meta"]["version"].as_str().unwrap().to_owned();
    assert_eq!(
        app.scim(Method::DELETE, &format!("/Users/{uid}"), &scim, None)
            .await
            .status,
        204
    );
    let r = app
        .scim_with(
            Method::GET,
            &format!("/Groups/{gid}"),
            &scim,
            None,
            &[("if-none-match", &v)],
        )
        .await;
    assert_eq!(
        r.status, 200,
        "the group's members changed, so its version did"
    );
    assert_eq!(r.body["members"], json!([]));
    let other = create_user(&app, &scim, user("y@acme.example")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .scim(
            Method::GET,
            &format!("/Users/{other}?sortOrder=sideways"),
            &scim,
            None,
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
}
