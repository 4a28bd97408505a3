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
    assert_eq!(
        ids,
        [
            USER,
            ENTERPRISE,
            GROUP,
            "urn:ietf:params:scim:schemas:extension:rosterd:2.0:OrgUser"
        ]
    );
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
    // Revoking a SCIM token is the operator's, like creating one.
    assert_eq!(
        app.delete(&format!("/api/v1/orgs/acme/tokens/{old_id}"), &admin)
            .await
            .status,
        403
    );
    assert_eq!(
        app.delete(&format!("/api/v1/orgs/acme/tokens/{old_id}"), OPERATOR)
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
    // A PUT that does not mention `active` leaves it unassigned: the member's access stays as
    // it was, and the User has no `active` until a client assigns it again.
    app.scim(Method::PATCH, &format!("/Users/{id}"), &scim, Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]}))).await;
    let mut put = user("edge@acme.example");
    put.as_object_mut().unwrap().remove("active");
    put["emails"] = json!([{"value": "new@acme.example", "primary": true}]);
    let r = app
        .scim(Method::PUT, &format!("/Users/{id}"), &scim, Some(put))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("active").is_none(), "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
            .await
            .body["access"],
        "removed"
    );
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

async fn total(app: &TestApp, scim: &str, filter: &str) -> Value {
    let r = app
        .scim(Method::GET, &format!("/Users?{}", q(filter)), scim, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["totalResults"].clone()
}

fn patch_op(op: &str, path: &str, value: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": [{"op": op, "path": path, "value": value}]})
}

fn version_of(doc: &Value) -> i64 {
    doc["meta"]["version"]
        .as_str()
        .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("no version in {doc}"))
}

#[tokio::test]
async fn concurrent_patches_without_if_match_all_land() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let u = create_user(&app, &scim, user("busy@acme.example")).await;
    let id = u["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");
    let at = |doc: &Value| version_of(doc);
    let start = at(&u);

    // Sixteen phone numbers added at once: every one is there afterwards.
    let adds = (0..16).map(|i| {
        let body = patch_op(
            "add",
            "phoneNumbers",
            json!([{"value": format!("+1 555 01{i:02}"), "type": "work"}]),
        );
        app.scim(Method::PATCH, &path, &scim, Some(body))
    });
    for r in futures_util::future::join_all(adds).await {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = app.scim(Method::GET, &path, &scim, None).await;
    let mut phones: Vec<String> = r.body["phoneNumbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_str().unwrap().to_owned())
        .collect();
    phones.sort();
    let want: Vec<String> = (0..16).map(|i| format!("+1 555 01{i:02}")).collect();
    assert_eq!(phones, want);
    assert_eq!(at(&r.body), start + 16, "one write per PATCH");

    // Sixteen title replacements: each applied in turn (sixteen new versions), one is last.
    let before = at(&r.body);
    let titles = (0..16).map(|i| {
        app.scim(
            Method::PATCH,
            &path,
            &scim,
            Some(patch_op("replace", "title", json!(format!("Title {i}")))),
        )
    });
    let results = futures_util::future::join_all(titles).await;
    let mut versions: Vec<i64> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.text);
            at(&r.body)
        })
        .collect();
    versions.sort();
    assert_eq!(versions, (before + 1..=before + 16).collect::<Vec<_>>());
    let r = app.scim(Method::GET, &path, &scim, None).await;
    let last = results.iter().find(|x| at(&x.body) == before + 16).unwrap();
    assert_eq!(r.body["title"], last.body["title"]);

    // `active` toggled sixteen times at once: every PATCH answers 200 and the phone numbers
    // added earlier are untouched.
    let toggles = (0..16).map(|i| {
        app.scim(
            Method::PATCH,
            &path,
            &scim,
            Some(patch_op("replace", "active", json!(i % 2 == 0))),
        )
    });
    for r in futures_util::future::join_all(toggles).await {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = app.scim(Method::GET, &path, &scim, None).await;
    assert_eq!(r.body["phoneNumbers"].as_array().unwrap().len(), 16);

    // A stale If-Match is still refused.
    let r = app
        .scim_with(
            Method::PATCH,
            &path,
            &scim,
            Some(patch_op("replace", "title", json!("late"))),
            &[("if-match", &format!("W/\"{start}\""))],
        )
        .await;
    assert_scim_error(&r, 412, None);

    // Groups: sixteen renames at once all land, one after the other.
    let g = app
        .scim(
            Method::POST,
            "/Groups",
            &scim,
            Some(json!({"schemas": [GROUP], "displayName": "Team"})),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text);
    let gpath = format!("/Groups/{}", g.body["id"].as_str().unwrap());
    let gstart = at(&g.body);
    let renames = (0..16).map(|i| {
        app.scim(
            Method::PATCH,
            &gpath,
            &scim,
            Some(patch_op(
                "replace",
                "displayName",
                json!(format!("Team {i}")),
            )),
        )
    });
    for r in futures_util::future::join_all(renames).await {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = app.scim(Method::GET, &gpath, &scim, None).await;
    assert_eq!(at(&r.body), gstart + 16, "{}", r.text);
}

#[tokio::test]
async fn removing_active_leaves_it_unassigned() {
    let app = spawn_app().await;
    let (admin, scim) = app.scim_org("acme").await;
    let u = create_user(&app, &scim, user("una@acme.example")).await;
    let id = u["id"].as_str().unwrap();
    let path = format!("/Users/{id}");
    let access = || async {
        app.get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
            .await
            .body["access"]
            .clone()
    };
    let before = access().await;
    let r = app
        .scim(
            Method::PATCH,
            &path,
            &scim,
            Some(json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "active"}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("active").is_none(), "{}", r.text);
    // GET agrees, filters see no `active`, and the member's access is unchanged.
    let r = app.scim(Method::GET, &path, &scim, None).await;
    assert!(r.body.get("active").is_none(), "{}", r.text);
    let mine = |f: &str| format!(r#"userName eq "una@acme.example" and {f}"#);
    assert_eq!(total(&app, &scim, &mine("userName pr")).await, 1);
    assert_eq!(total(&app, &scim, &mine("active pr")).await, 0);
    assert_eq!(total(&app, &scim, &mine("active eq true")).await, 0);
    assert_eq!(access().await, before);
    // Another PATCH leaves it unassigned; assigning it again shows it.
    let r = app
        .scim(
            Method::PATCH,
            &path,
            &scim,
            Some(patch_op("replace", "title", json!("Dev"))),
        )
        .await;
    assert!(r.body.get("active").is_none(), "{}", r.text);
    let r = app
        .scim(
            Method::PATCH,
            &path,
            &scim,
            Some(patch_op("add", "active", json!(false))),
        )
        .await;
    assert_eq!(r.body["active"], false, "{}", r.text);
    assert_eq!(access().await, "removed");
    // A new user without `active` is active.
    let mut body = user("fresh@acme.example");
    body.as_object_mut().unwrap().remove("active");
    assert_eq!(create_user(&app, &scim, body).await["active"], true);
}

#[tokio::test]
async fn read_only_attributes_cannot_be_changed() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let u = create_user(&app, &scim, user("ro@acme.example")).await;
    let id = u["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");
    let other = "01a22d26-ac59-72e6-a134-05751bdffaf0";
    for body in [
        patch_op("replace", "id", json!(other)),
        patch_op("add", "meta.created", json!("2001-01-01T00:00:00Z")),
        patch_op("replace", "meta", json!({"resourceType": "Group"})),
        json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "meta.location"}]}),
        json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "id"}]}),
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"id": other, "title": "x"}}]}),
    ] {
        let r = app
            .scim(Method::PATCH, &path, &scim, Some(body.clone()))
            .await;
        assert_scim_error(&r, 400, Some("mutability"));
    }
    // Nothing changed.
    let r = app.scim(Method::GET, &path, &scim, None).await;
    assert_eq!(r.body, u);
    // A path-less value repeating the same id is fine.
    let r = app
        .scim(
            Method::PATCH,
            &path,
            &scim,
            Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"id": id, "title": "Dev"}}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // PUT: echoing id and meta as read is fine (also with an older version and lastModified);
    // a different id, created, resourceType or location is refused.
    let mut echo = r.body.clone();
    echo["meta"]["version"] = json!("W/\"1\"");
    echo["meta"]["lastModified"] = json!("2000-01-01T00:00:00Z");
    let r = app
        .scim(Method::PUT, &path, &scim, Some(echo.clone()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let current = r.body.clone();
    for (ptr, value) in [
        ("/id", json!(other)),
        ("/meta/created", json!("2001-01-01T00:00:00Z")),
        ("/meta/resourceType", json!("Group")),
        ("/meta/location", json!("http://elsewhere.example/Users/x")),
        ("/meta", json!("not an object")),
    ] {
        let mut body = echo.clone();
        *body.pointer_mut(ptr).unwrap() = value;
        body["title"] = json!("Changed");
        let r = app.scim(Method::PUT, &path, &scim, Some(body)).await;
        assert_scim_error(&r, 400, Some("mutability"));
    }
    assert_eq!(
        app.scim(Method::GET, &path, &scim, None).await.body,
        current
    );

    // Groups alike.
    let g = app
        .scim(
            Method::POST,
            "/Groups",
            &scim,
            Some(json!({"schemas": [GROUP], "displayName": "Ops"})),
        )
        .await;
    let gpath = format!("/Groups/{}", g.body["id"].as_str().unwrap());
    let r = app
        .scim(
            Method::PATCH,
            &gpath,
            &scim,
            Some(patch_op("replace", "id", json!(other))),
        )
        .await;
    assert_scim_error(&r, 400, Some("mutability"));
    let mut put = g.body.clone();
    put["id"] = json!(other);
    let r = app.scim(Method::PUT, &gpath, &scim, Some(put)).await;
    assert_scim_error(&r, 400, Some("mutability"));
    let r = app
        .scim(Method::PUT, &gpath, &scim, Some(g.body.clone()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn numbers_are_kept_exactly_and_nul_in_filters_is_refused() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    // Sent as raw text: serde_json (in this test too) would round the numbers.
    let body = format!(
        r#"{{"schemas": ["{USER}"], "userName": "num@acme.example", "emails": [{{"value": "num@acme.example"}}],
            "x-big": 123456789012345678901234567890, "x-exact": 0.1000000000000000055511151231257827,
            "x-list": [18446744073709551616, 1e3, 2]}}"#
    );
    let res = app
        .client
        .post(app.url("/scim/v2/Users"))
        .bearer_auth(&scim)
        .header("content-type", "application/scim+json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let text = res.text().await.unwrap();
    let expect = [
        r#""x-big":123456789012345678901234567890"#,
        r#""x-exact":0.1000000000000000055511151231257827"#,
        r#""x-list":[18446744073709551616,1e3,2]"#,
    ];
    for e in expect {
        assert!(text.contains(e), "{e} not in {text}");
    }
    let id = serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Read back, listed, and after an unrelated PATCH: still exact.
    let r = app
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            &scim,
            Some(patch_op("replace", "title", json!("T"))),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for path in [
        format!("/Users/{id}"),
        format!("/Users?{}", q(r#"title eq "T""#)),
    ] {
        let r = app.scim(Method::GET, &path, &scim, None).await;
        for e in expect {
            assert!(r.text.contains(e), "{e} not in {}", r.text);
        }
    }
    // Filters compare them as numbers.
    let r = app
        .scim(
            Method::GET,
            &format!("/Users?{}", q("x-big gt 1e29")),
            &scim,
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);
    // NUL in a filter value, raw or escaped: a SCIM 400 on both backends, not a database error.
    for f in [
        "userName eq \"a\u{0}b\"",
        r#"userName eq "a\u0000b""#,
        r#"title co "\u0000""#,
    ] {
        let r = app
            .scim(Method::GET, &format!("/Users?{}", q(f)), &scim, None)
            .await;
        assert_scim_error(&r, 400, Some("invalidFilter"));
        assert!(r.text.contains("NUL"), "{}", r.text);
        let r = app
            .scim(Method::POST, "/Users/.search", &scim, Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": f})))
            .await;
        // In a JSON body an escaped NUL is refused as the body is read (invalidValue).
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(
            ["invalidValue", "invalidFilter"].contains(&r.body["scimType"].as_str().unwrap_or("")),
            "{}",
            r.text
        );
        assert!(r.text.contains("NUL"), "{}", r.text);
    }
    // NUL in a body string is refused too (it cannot be stored, and marks exact numbers).
    let r = app
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            &scim,
            Some(patch_op("replace", "title", json!("a\u{0}b"))),
        )
        .await;
    assert_scim_error(&r, 400, Some("invalidValue"));
}

#[tokio::test]
async fn filters_nested_past_the_limit_are_refused_at_any_length() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let limit = rosterd::scim::filter::MAX_DEPTH;
    let chain = |n: usize| vec![r#"userName eq "x""#; n].join(" or ");
    let r = app
        .scim(
            Method::GET,
            &format!("/Users?{}", q(&chain(limit))),
            &scim,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let huge_links = "emails[type pr].".repeat(250) + "value pr";
    for f in [
        chain(limit + 1),
        vec!["title pr"; 300].join(" and "),
        huge_links,
        "not (".repeat(600) + "title pr" + &")".repeat(600),
    ] {
        let r = app
            .scim(Method::GET, &format!("/Users?{}", q(&f)), &scim, None)
            .await;
        assert_scim_error(&r, 400, Some("invalidFilter"));
        assert!(r.text.contains("nested too deeply"), "{}", r.text);
    }
}

async fn create_group(app: &TestApp, token: &str, name: &str, member: &str) -> Value {
    let body = json!({"schemas": [GROUP], "displayName": name, "members": [{"value": member}]});
    let r = app.scim(Method::POST, "/Groups", token, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

#[tokio::test]
async fn another_orgs_groups_and_bulk_ids_are_not_found() {
    let app = spawn_app().await;
    let (_, scim_a) = app.scim_org("org-a").await;
    let (_, scim_b) = app.scim_org("org-b").await;
    let ua = create_user(&app, &scim_a, user("ann@a.example")).await;
    let ub = create_user(&app, &scim_b, user("bob@b.example")).await;
    let (a_user, b_user) = (ua["id"].as_str().unwrap(), ub["id"].as_str().unwrap());
    let ga = create_group(&app, &scim_a, "Team A", a_user).await;
    let gb = create_group(&app, &scim_b, "Team B", b_user).await;
    let (a_group, b_group) = (ga["id"].as_str().unwrap(), gb["id"].as_str().unwrap());
    let b_path = format!("/Groups/{b_group}");
    let b_before = app.scim(Method::GET, &b_path, &scim_b, None).await.body;

    // B's group through A's token: not found, for every method.
    assert_scim_error(
        &app.scim(Method::GET, &b_path, &scim_a, None).await,
        404,
        None,
    );
    let put = json!({"schemas": [GROUP], "displayName": "Taken", "members": [{"value": a_user}]});
    assert_scim_error(
        &app.scim(Method::PUT, &b_path, &scim_a, Some(put)).await,
        404,
        None,
    );
    for body in [
        patch_op("replace", "displayName", json!("Taken")),
        patch_op("add", "members", json!([{"value": a_user}])),
        json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "members"}]}),
    ] {
        assert_scim_error(
            &app.scim(Method::PATCH, &b_path, &scim_a, Some(body)).await,
            404,
            None,
        );
    }
    assert_scim_error(
        &app.scim(Method::DELETE, &b_path, &scim_a, None).await,
        404,
        None,
    );
    let r = app
        .scim(
            Method::GET,
            &format!("/Groups?{}", q(r#"displayName eq "Team B""#)),
            &scim_a,
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.text);
    let r = app
        .scim(Method::GET, "/Groups?count=1000", &scim_a, None)
        .await;
    assert!(
        !r.text.contains(b_group) && !r.text.contains(b_user),
        "{}",
        r.text
    );

    // B's user cannot join A's group: by PATCH, by PUT, or by path-less value.
    let a_path = format!("/Groups/{a_group}");
    for body in [
        patch_op("add", "members", json!([{"value": b_user}])),
        patch_op("replace", "members", json!([{"value": b_user}])),
        json!({"schemas": [PATCH], "Operations": [{"op": "add", "value": {"members": [{"value": b_user}]}}]}),
    ] {
        let r = app.scim(Method::PATCH, &a_path, &scim_a, Some(body)).await;
        assert_scim_error(&r, 400, Some("invalidValue"));
    }
    let put = json!({"schemas": [GROUP], "displayName": "Team A", "members": [{"value": a_user}, {"value": b_user}]});
    assert_scim_error(
        &app.scim(Method::PUT, &a_path, &scim_a, Some(put)).await,
        400,
        Some("invalidValue"),
    );
    let members = app.scim(Method::GET, &a_path, &scim_a, None).await.body["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    assert_eq!(members[0]["value"], a_user);

    // Bulk from A naming B's user and group: each operation is not found (or refused), and
    // nothing of B's changes.
    let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "PUT", "path": format!("/Users/{b_user}"), "data": user("bob@b.example")},
        {"method": "PATCH", "path": format!("/Users/{b_user}"), "data": patch_op("replace", "active", json!(false))},
        {"method": "DELETE", "path": format!("/Users/{b_user}")},
        {"method": "PUT", "path": format!("/Groups/{b_group}"), "data": {"schemas": [GROUP], "displayName": "X"}},
        {"method": "PATCH", "path": format!("/Groups/{b_group}"), "data": patch_op("replace", "displayName", json!("X"))},
        {"method": "DELETE", "path": format!("/Groups/{b_group}")},
        {"method": "PATCH", "path": format!("/Groups/{a_group}"), "data": patch_op("add", "members", json!([{"value": b_user}]))},
        {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"schemas": [GROUP], "displayName": "Mixed", "members": [{"value": b_user}]}},
    ]});
    let r = app.scim(Method::POST, "/Bulk", &scim_a, Some(ops)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let statuses: Vec<&str> = r.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["404", "404", "404", "404", "404", "404", "400", "400"],
        "{}",
        r.text
    );
    assert_eq!(
        app.scim(Method::GET, &b_path, &scim_b, None).await.body,
        b_before
    );
    let r = app
        .scim(Method::GET, &format!("/Users/{b_user}"), &scim_b, None)
        .await;
    assert_eq!(r.body["active"], true, "{}", r.text);
    assert_eq!(version_of(&r.body), version_of(&ub), "{}", r.text);
    let r = app
        .scim(
            Method::GET,
            &format!("/Groups?{}", q(r#"displayName eq "Mixed""#)),
            &scim_a,
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.text);
}

#[tokio::test]
async fn large_patches_and_bulks_stay_correct() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let u = create_user(&app, &scim, user("many@acme.example")).await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    // Instant messaging addresses: a multi-valued attribute kept in the stored document (phone
    // numbers have their own table, at most 50 a member).
    let im = |i: usize| json!({"value": format!("im-{i:05}"), "type": "xmpp"});
    // 2 000 addresses, 500 of them sent twice: each kept once, in order.
    let mut values: Vec<Value> = (0..2000).map(im).collect();
    values.extend((0..500).map(im));
    let r = app
        .scim(
            Method::PATCH,
            &path,
            &scim,
            Some(patch_op("add", "ims", json!(values))),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got: Vec<Value> = r.body["ims"].as_array().unwrap().clone();
    assert_eq!(got, (0..2000).map(im).collect::<Vec<_>>());
    // Adding them all again changes nothing; removing the even ones by value leaves the odd.
    let r = app
        .scim(
            Method::PATCH,
            &path,
            &scim,
            Some(patch_op("add", "ims", json!(got))),
        )
        .await;
    assert_eq!(r.body["ims"].as_array().unwrap().len(), 2000);
    let even: Vec<Value> = (0..2000)
        .step_by(2)
        .map(|i| json!({"value": format!("im-{i:05}")}))
        .collect();
    let r = app
        .scim(
            Method::PATCH,
            &path,
            &scim,
            Some(json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "ims", "value": even}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["ims"].as_array().unwrap(),
        &(1..2000).step_by(2).map(im).collect::<Vec<_>>()
    );
    // Many addresses, one of them primary: it takes the mark from the one there.
    let mut emails: Vec<Value> = (0..1000)
        .map(|i| json!({"value": format!("m{i}@acme.example"), "type": "other"}))
        .collect();
    emails[700]["primary"] = json!(true);
    let r = app
        .scim(
            Method::PATCH,
            &path,
            &scim,
            Some(patch_op("add", "emails", json!(emails))),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let primaries: Vec<&Value> = r.body["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["primary"] == true)
        .map(|e| &e["value"])
        .collect();
    assert_eq!(primaries, [&json!("m700@acme.example")], "{}", r.text);

    // A Bulk of 300 users, each naming the next one (defined later) as manager.
    let n = 300;
    let ops: Vec<Value> = (0..n)
        .map(|i| {
            let mut data = user(&format!("chain{i}@acme.example"));
            if i + 1 < n {
                data[ENTERPRISE] = json!({"manager": {"value": format!("bulkId:u{}", i + 1)}});
            }
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": data})
        })
        .collect();
    let r = app
        .scim(
            Method::POST,
            "/Bulk",
            &scim,
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let results = r.body["Operations"].as_array().unwrap();
    assert_eq!(results.len(), n);
    let mut ids = std::collections::HashMap::new();
    for res in results {
        assert_eq!(res["status"], "201", "{res}");
        let loc = res["location"].as_str().unwrap();
        ids.insert(
            res["bulkId"].as_str().unwrap().to_owned(),
            loc.rsplit('/').next().unwrap().to_owned(),
        );
    }
    for i in 0..n - 1 {
        let r = app
            .scim(
                Method::GET,
                &format!("/Users/{}", ids[&format!("u{i}")]),
                &scim,
                None,
            )
            .await;
        assert_eq!(
            r.body[ENTERPRISE]["manager"]["value"],
            ids[&format!("u{}", i + 1)],
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn group_lists_show_each_groups_own_members() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    let mut users = Vec::new();
    for i in 0..7 {
        let u = create_user(&app, &scim, user(&format!("m{i}@acme.example"))).await;
        users.push(u["id"].as_str().unwrap().to_owned());
    }
    // Group i holds users i % 7 and (i * 3) % 7 (once when they coincide); every fifth is empty.
    let mut want = std::collections::BTreeMap::new();
    for i in 0..60 {
        let mut ids: Vec<String> = if i % 5 == 0 {
            vec![]
        } else {
            vec![users[i % 7].clone(), users[(i * 3) % 7].clone()]
        };
        ids.sort();
        ids.dedup();
        let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
        let body =
            json!({"schemas": [GROUP], "displayName": format!("G{i:02}"), "members": members});
        let r = app.scim(Method::POST, "/Groups", &scim, Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        want.insert(format!("G{i:02}"), ids);
    }
    let members_of = |doc: &Value| -> Vec<String> {
        let mut ids: Vec<String> = doc["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    // The whole list, pages of it, sorted both ways: each group with exactly its members.
    for query in [
        "count=100".to_owned(),
        "sortBy=displayName&sortOrder=descending&startIndex=11&count=20".to_owned(),
        format!("filter={}", urlencode(r#"displayName sw "G1""#)),
        format!(
            "filter={}",
            urlencode(&format!(r#"members[value eq "{}"]"#, users[3]))
        ),
        "attributes=members&count=100".to_owned(),
    ] {
        let r = app
            .scim(Method::GET, &format!("/Groups?{query}"), &scim, None)
            .await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        let resources = r.body["Resources"].as_array().unwrap();
        assert!(!resources.is_empty(), "{query}");
        for g in resources {
            let got = members_of(g);
            let doc = app
                .scim(
                    Method::GET,
                    &format!("/Groups/{}", g["id"].as_str().unwrap()),
                    &scim,
                    None,
                )
                .await;
            let name = doc.body["displayName"].as_str().unwrap();
            assert_eq!(got, want[name], "{query}: {name}");
        }
        if query.starts_with("sortBy") {
            let names: Vec<&str> = resources
                .iter()
                .map(|g| g["displayName"].as_str().unwrap())
                .collect();
            let expect: Vec<String> = (30..50).rev().map(|i| format!("G{i:02}")).collect();
            assert_eq!(names, expect, "{query}");
        }
        if query.starts_with("filter=members") {
            let n = want.values().filter(|ids| ids.contains(&users[3])).count();
            assert_eq!(resources.len(), n, "{query}");
        }
    }
    // Without members when excluded.
    let r = app
        .scim(
            Method::GET,
            "/Groups?excludedAttributes=members&count=100",
            &scim,
            None,
        )
        .await;
    assert!(
        r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g.get("members").is_none())
    );
}

/// Users whose stored documents hold text that tests the SQL narrowing: case, LIKE's own
/// characters, JSON escapes, and letters whose lowercase differs between Unicode and ASCII.
async fn seed_tricky(app: &TestApp, scim: &str) {
    let titles = [
        "Engineer",
        "ENGINEERING lead",
        "50% off_sale",
        "back\\slash",
        "quote\"d",
        "\u{212A}ILO watt",
        "İstanbul office",
        "tab\there",
        "Ünïcode",
        "engineer",
        "",
    ];
    for (i, t) in titles.iter().enumerate() {
        let mut u = user(&format!("u{i}@acme.example"));
        if !t.is_empty() {
            u["title"] = json!(t);
        }
        u["externalId"] = json!(format!("ext-{i}"));
        u["phoneNumbers"] = json!([{"value": format!("+1 555 {i:04}"), "type": if i % 2 == 0 { "work" } else { "home" }}]);
        u["x-num"] = json!(i * 11);
        u[ENTERPRISE] = json!({"department": if i % 3 == 0 { "R&D" } else { "Sales_EU" }, "employeeNumber": format!("{i}")});
        create_user(app, scim, u).await;
    }
}

#[tokio::test]
async fn narrowed_filters_answer_what_the_evaluator_does() {
    use rosterd::scim::{filter, schema::Rules};
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("acme").await;
    seed_tricky(&app, &scim).await;
    let all = app
        .scim(Method::GET, "/Users?count=1000", &scim, None)
        .await;
    let docs = all.body["Resources"].as_array().unwrap().clone();
    assert_eq!(docs.len(), 12, "{}", all.text);
    for f in [
        r#"title eq "engineer""#,
        r#"title co "ENGINEER""#,
        r#"title sw "eng""#,
        r#"title ew "LEAD""#,
        r#"title co "%""#,
        r#"title co "_""#,
        r#"title co "f_s""#,
        r#"title co "\\""#,
        r#"title co "\"""#,
        r#"title co "kilo""#,
        r#"title sw "i""#,
        r#"title co "istanbul""#,
        r#"title co "\t""#,
        r#"title co "ünï""#,
        r#"title co "zzz""#,
        r#"title eq "50% off_sale""#,
        r#"phoneNumbers co "555 000""#,
        r#"phoneNumbers.type eq "work""#,
        r#"phoneNumbers[type eq "home" and value ew "3"]"#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "r&d""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department co "s_e""#,
        r#"x-num co "1""#,
        r#"x-num gt 50"#,
        r#"title co "eng" and userName sw "u1""#,
        r#"title co "eng" or externalId eq "ext-3""#,
        r#"title co "eng" or title co "watt""#,
        r#"not (title co "eng")"#,
        r#"title ne "engineer""#,
        r#"title pr and not (title co "i")"#,
        r#"userName co "u1" and title co "ing""#,
    ] {
        let parsed = filter::parse(f).unwrap();
        let mut want: Vec<&str> = docs
            .iter()
            .filter(|d| filter::matches(&parsed, d, &Rules))
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        want.sort();
        let r = app
            .scim(
                Method::GET,
                &format!("/Users?count=1000&{}", q(f)),
                &scim,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{f}: {}", r.text);
        let mut got: Vec<&str> = r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, want, "{f}");
        assert_eq!(r.body["totalResults"], want.len(), "{f}");
    }
}

#[tokio::test]
async fn filters_beyond_the_budget_answer_too_many() {
    let app = spawn_with(Mail::Log, |c| c.scim.filter_budget = 5).await;
    let (_, scim) = app.scim_org("acme").await;
    seed_tricky(&app, &scim).await;
    // More candidates than the budget: refused, whatever the page size.
    for query in [
        format!("filter={}&count=1", urlencode(r#"title co "e""#)),
        format!("filter={}", urlencode(r#"phoneNumbers[type eq "work"]"#)),
        format!("filter={}", urlencode(r#"not (userName eq "x")"#)),
        "sortBy=title&count=2".to_owned(),
    ] {
        let r = app
            .scim(Method::GET, &format!("/Users?{query}"), &scim, None)
            .await;
        assert_scim_error(&r, 400, Some("tooMany"));
        assert!(r.text.contains("scim.filter_budget"), "{}", r.text);
    }
    let r = app
        .scim(
            Method::POST,
            "/.search",
            &scim,
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "title pr"})),
        )
        .await;
    assert_scim_error(&r, 400, Some("tooMany"));
    // Narrowed by SQL below the budget: answered. (Three documents hold "engineer"; SQL reads
    // only those, although the org has twelve users.)
    for (f, n) in [
        (r#"title co "engineer""#, 3),
        (r#"title co "eng" and userName sw "u1""#, 1),
        (r#"userName eq "u3@acme.example""#, 1),
        (r#"title eq "50% off_sale""#, 1),
    ] {
        let r = app
            .scim(Method::GET, &format!("/Users?{}", q(f)), &scim, None)
            .await;
        assert_eq!(r.status, 200, "{f}: {}", r.text);
        assert_eq!(r.body["totalResults"], n, "{f}: {}", r.text);
    }
    // Plain pages ordered in SQL are not limited.
    let r = app
        .scim(Method::GET, "/Users?count=100&sortBy=userName", &scim, None)
        .await;
    assert_eq!(r.body["totalResults"], 12, "{}", r.text);
}
