//! Org-defined member attributes: definitions (CRUD and their refusals), values on every write
//! path with their type errors, uniqueness held by the database, the list filter
//! `attr.NAME=VALUE`, the detail, export, erasure, audit entries and tenant isolation.

use serde_json::{Value, json};

use crate::helpers::*;

async fn define(app: &TestApp, org: &str, token: &str, body: Value) -> Res {
    app.post(&format!("/api/v1/orgs/{org}/attributes"), token, body)
        .await
}

/// The three attributes the tests lean on: `MemberID` (string, unique), `IsAuthRep` (boolean),
/// `MonthlyFee` (decimal).
pub async fn standard_schema(app: &TestApp, org: &str, token: &str) {
    for body in [
        json!({"name": "MemberID", "type": "string", "unique": true}),
        json!({"name": "IsAuthRep", "type": "boolean"}),
        json!({"name": "MonthlyFee", "type": "decimal"}),
    ] {
        let r = define(app, org, token, body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
}

async fn add_with(app: &TestApp, org: &str, token: &str, email: &str, attrs: Value) -> Res {
    app.post(
        &format!("/api/v1/orgs/{org}/members"),
        token,
        json!({"members": [{"email": email, "attributes": attrs}]}),
    )
    .await
}

async fn detail(app: &TestApp, org: &str, token: &str, id: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/orgs/{org}/members/{id}"), token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn list_emails(app: &TestApp, org: &str, token: &str, query: &str) -> Res {
    app.get(&format!("/api/v1/orgs/{org}/members?{query}"), token)
        .await
}

fn emails(r: &Res) -> Vec<String> {
    let mut v: Vec<String> = r.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.text))
        .iter()
        .map(|m| m["member_email"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

async fn audit_actions(app: &TestApp, org: &str, token: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/v1/orgs/{org}/audit?limit=200"), token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn definitions_are_created_listed_changed_and_deleted_with_audit_entries() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    standard_schema(&app, "acme", &token).await;
    let r = define(
        &app,
        "acme",
        &token,
        json!({"name": "Tier", "type": "choice", "options": ["Gold", "Silver"], "description": "Support tier"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["type"], "choice");
    assert_eq!(r.body["options"], json!(["Gold", "Silver"]));

    let r = app.get("/api/v1/orgs/acme/attributes", &token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["IsAuthRep", "MemberID", "MonthlyFee", "Tier"]);
    let member_id = &r.body["items"][1];
    assert_eq!(member_id["unique"], true);
    assert_eq!(member_id["required"], false);
    assert_eq!(member_id["type"], "string");

    // Names are case-insensitive: a lookup finds it, a second definition is refused.
    let r = app
        .get("/api/v1/orgs/acme/attributes/memberid", &token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "MemberID");
    let r = define(
        &app,
        "acme",
        &token,
        json!({"name": "memberID", "type": "integer"}),
    )
    .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "attribute_exists");

    // Unused attributes may change anything.
    let r = app
        .patch(
            "/api/v1/orgs/acme/attributes/Tier",
            &token,
            json!({"name": "Level", "options": ["Gold", "Silver", "Bronze"], "required": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "Level");
    let r = app
        .patch(
            "/api/v1/orgs/acme/attributes/Level",
            &token,
            json!({"type": "integer"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("options").is_none(), "{}", r.text);
    let r = app
        .delete("/api/v1/orgs/acme/attributes/Level", &token)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app.get("/api/v1/orgs/acme/attributes/Level", &token).await;
    assert_problem(&r, 404);

    let actions: Vec<String> = audit_actions(&app, "acme", &token)
        .await
        .iter()
        .filter(|e| e["subject"]["kind"] == "attribute")
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "attribute.deleted",
            "attribute.updated",
            "attribute.updated",
            "attribute.created",
            "attribute.created",
            "attribute.created",
            "attribute.created",
        ]
    );
}

#[tokio::test]
async fn bad_definitions_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    for (body, field) in [
        (json!({"name": "1st", "type": "string"}), "name"),
        (json!({"name": "a.b", "type": "string"}), "name"),
        (json!({"name": "Tier", "type": "choice"}), "options"),
        (
            json!({"name": "Tier", "type": "choice", "options": ["A", "a"]}),
            "options",
        ),
        (
            json!({"name": "Fee", "type": "decimal", "options": ["1"]}),
            "options",
        ),
    ] {
        let r = define(&app, "acme", &token, body.clone()).await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field, "{body}: {}", r.text);
    }
    // An unknown type is a body error naming `type`.
    let r = define(&app, "acme", &token, json!({"name": "X", "type": "float"})).await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert!(r.text.contains("type"), "{}", r.text);
    let r = app.get("/api/v1/orgs/acme/attributes", &token).await;
    assert_eq!(r.body["items"], json!([]));
}

#[tokio::test]
async fn values_are_set_on_add_and_patch_shown_in_list_and_detail_and_audited() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    standard_schema(&app, "acme", &token).await;
    let r = add_with(
        &app,
        "acme",
        &token,
        "ada@acme.example",
        json!({"MemberID": "M-001", "IsAuthRep": true, "MonthlyFee": "12.50"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let d = detail(&app, "acme", &token, &id).await;
    assert_eq!(
        d["attributes"],
        json!({"MemberID": "M-001", "IsAuthRep": true, "MonthlyFee": "12.5"})
    );
    let r = list_emails(&app, "acme", &token, "").await;
    let ada = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap();
    assert_eq!(ada["attributes"]["MemberID"], "M-001");

    // PATCH sets some, clears one (`null`), keeps the rest.
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{id}"),
            &token,
            json!({"attributes": {"IsAuthRep": false, "MonthlyFee": null}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["attributes"],
        json!({"MemberID": "M-001", "IsAuthRep": false})
    );

    // Each change of values is audited on the member, before and after.
    let entries: Vec<Value> = audit_actions(&app, "acme", &token)
        .await
        .into_iter()
        .filter(|e| e["action"] == "member.attributes_set")
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["subject"]["id"], id.as_str());
    assert_eq!(
        entries[0]["before"]["attributes"],
        json!({"MemberID": "M-001", "IsAuthRep": true, "MonthlyFee": "12.5"})
    );
    assert_eq!(
        entries[0]["after"]["attributes"],
        json!({"MemberID": "M-001", "IsAuthRep": false})
    );
    assert_eq!(entries[1]["before"]["attributes"], json!({}));
    // The same PATCH again changes nothing and writes no entry.
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{id}"),
            &token,
            json!({"attributes": {"IsAuthRep": false}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let n = audit_actions(&app, "acme", &token)
        .await
        .iter()
        .filter(|e| e["action"] == "member.attributes_set")
        .count();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn type_errors_on_add_and_patch_name_the_attribute_and_change_nothing() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    standard_schema(&app, "acme", &token).await;
    let before = app.snapshot("acme").await;
    for (attrs, field) in [
        (
            json!({"IsAuthRep": "yes"}),
            "members[1].attributes.IsAuthRep",
        ),
        (
            json!({"MonthlyFee": "12,50"}),
            "members[1].attributes.MonthlyFee",
        ),
        (
            json!({"MonthlyFee": true}),
            "members[1].attributes.MonthlyFee",
        ),
        (json!({"MemberID": 7}), "members[1].attributes.MemberID"),
        (json!({"Nope": "x"}), "members[1].attributes.Nope"),
    ] {
        let r = app
            .post(
                "/api/v1/orgs/acme/members",
                &token,
                json!({"members": [
                    {"email": "ok@acme.example", "attributes": {"MemberID": "M-9"}},
                    {"email": "bad@acme.example", "attributes": attrs},
                ]}),
            )
            .await;
        assert_problem(&r, 422);
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
        assert_eq!(app.snapshot("acme").await, before, "{attrs}");
    }
    let id = app.add("acme", &token, &["ada@acme.example"]).await[0];
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{id}"),
            &token,
            json!({"given_name": "Ada", "attributes": {"IsAuthRep": 1}}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "attributes.IsAuthRep");
    let d = detail(&app, "acme", &token, &id.to_string()).await;
    assert_eq!(d["given_name"], Value::Null, "nothing changed");
    assert_eq!(d["attributes"], json!({}));
}

#[tokio::test]
async fn uniqueness_is_enforced_on_every_write_and_by_the_index() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    standard_schema(&app, "acme", &token).await;
    let r = add_with(
        &app,
        "acme",
        &token,
        "ada@acme.example",
        json!({"MemberID": "M-1"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = app.snapshot("acme").await;
    // A second member with the same value: refused, naming the attribute.
    let r = add_with(
        &app,
        "acme",
        &token,
        "bob@acme.example",
        json!({"MemberID": "M-1"}),
    )
    .await;
    assert_problem(&r, 422);
    assert_eq!(
        r.body["errors"][0]["field"],
        "members[0].attributes.MemberID"
    );
    assert!(
        r.body["detail"].as_str().unwrap().contains("unique"),
        "{}",
        r.text
    );
    // Two in one request: refused as a whole.
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &token,
            json!({"members": [
                {"email": "bob@acme.example", "attributes": {"MemberID": "M-2"}},
                {"email": "cy@acme.example", "attributes": {"MemberID": "M-2"}},
            ]}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(
        r.body["errors"][0]["field"],
        "members[1].attributes.MemberID"
    );
    assert_eq!(app.snapshot("acme").await, before);

    // The database holds the rule, not only the check: a raw second insert fails.
    let org_id = app.org_id("acme").await;
    let bob = app.add("acme", &token, &["bob@acme.example"]).await[0];
    let mut tx = app.store.write().await.unwrap();
    let schema = rosterd::store::attributes::list(&mut tx, org_id)
        .await
        .unwrap();
    let mid = schema.iter().find(|d| d.name == "MemberID").unwrap();
    let err = rosterd::store::attributes::set_value(&mut tx, org_id, mid.id, bob, "M-1", true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, rosterd::store::StoreError::Unique(_)),
        "{err:?}"
    );
    drop(tx);

    // Non-unique attributes may repeat; making one unique with duplicates is refused.
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{bob}"),
            &token,
            json!({"attributes": {"MonthlyFee": 10}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ada = app
        .get("/api/v1/orgs/acme/members?email=ada@acme.example", &token)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{ada}"),
            &token,
            json!({"attributes": {"MonthlyFee": "10.00"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(
            "/api/v1/orgs/acme/attributes/MonthlyFee",
            &token,
            json!({"unique": true}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "attribute_duplicates");
    assert!(
        r.body["detail"].as_str().unwrap().contains("`10`"),
        "{}",
        r.text
    );
    let r = app
        .get("/api/v1/orgs/acme/attributes/MonthlyFee", &token)
        .await;
    assert_eq!(r.body["unique"], false);
    // With distinct values it becomes unique, and then refuses a repeat.
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{ada}"),
            &token,
            json!({"attributes": {"MonthlyFee": 11}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(
            "/api/v1/orgs/acme/attributes/MonthlyFee",
            &token,
            json!({"unique": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{ada}"),
            &token,
            json!({"attributes": {"MonthlyFee": "10.0"}}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "attributes.MonthlyFee");
}

#[tokio::test]
async fn definitions_in_use_refuse_rename_retype_delete_dropped_options_and_required() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    standard_schema(&app, "acme", &token).await;
    let r = define(
        &app,
        "acme",
        &token,
        json!({"name": "Tier", "type": "choice", "options": ["Gold", "Silver"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = add_with(
        &app,
        "acme",
        &token,
        "ada@acme.example",
        json!({"MemberID": "M-1", "Tier": "gold"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        detail(&app, "acme", &token, &id).await["attributes"]["Tier"],
        "Gold",
        "a choice is stored as the option's spelling"
    );
    let before = app.snapshot("acme").await;
    for (path, body) in [
        ("MemberID", json!({"name": "MemberNo"})),
        ("MemberID", json!({"type": "integer"})),
        ("Tier", json!({"options": ["Silver", "Bronze"]})),
    ] {
        let r = app
            .patch(
                &format!("/api/v1/orgs/acme/attributes/{path}"),
                &token,
                body,
            )
            .await;
        assert_problem(&r, 409);
        assert_eq!(r.body["code"], "attribute_in_use", "{}", r.text);
    }
    let r = app
        .delete("/api/v1/orgs/acme/attributes/MemberID", &token)
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "attribute_in_use");
    // The owner has no MemberID: it cannot become required.
    let r = app
        .patch(
            "/api/v1/orgs/acme/attributes/MemberID",
            &token,
            json!({"required": true}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "attribute_missing_values");
    let r = define(
        &app,
        "acme",
        &token,
        json!({"name": "Badge", "type": "integer", "required": true}),
    )
    .await;
    assert_problem(&r, 409);
    assert_eq!(app.snapshot("acme").await, before);

    // Adding an option keeps the values; once every current member has one, `required` holds
    // and is enforced on add and on clearing.
    let r = app
        .patch(
            "/api/v1/orgs/acme/attributes/Tier",
            &token,
            json!({"options": ["Gold", "Silver", "Bronze"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let owner = app
        .get("/api/v1/orgs/acme/members?role=owner", &token)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{owner}"),
            &token,
            json!({"attributes": {"Tier": "Silver"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(
            "/api/v1/orgs/acme/attributes/Tier",
            &token,
            json!({"required": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = add_with(&app, "acme", &token, "bob@acme.example", json!({})).await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "members[0].attributes.Tier");
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{id}"),
            &token,
            json!({"attributes": {"Tier": null}}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "attributes.Tier");
    let r = add_with(
        &app,
        "acme",
        &token,
        "bob@acme.example",
        json!({"Tier": "Bronze"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn the_list_filters_by_attribute_with_typed_comparison() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    standard_schema(&app, "acme", &token).await;
    for (email, attrs) in [
        (
            "ada@acme.example",
            json!({"MemberID": "M-1", "IsAuthRep": true, "MonthlyFee": "12.50"}),
        ),
        (
            "bob@acme.example",
            json!({"MemberID": "M-2", "IsAuthRep": false, "MonthlyFee": 12.5}),
        ),
        (
            "cy@acme.example",
            json!({"MemberID": "M-3", "IsAuthRep": true, "MonthlyFee": "9"}),
        ),
        ("dee@acme.example", json!({})),
    ] {
        let r = add_with(&app, "acme", &token, email, attrs).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = list_emails(&app, "acme", &token, "attr.IsAuthRep=true").await;
    assert_eq!(emails(&r), ["ada@acme.example", "cy@acme.example"]);
    let r = list_emails(&app, "acme", &token, "attr.isauthrep=TRUE").await;
    assert_eq!(emails(&r), ["ada@acme.example", "cy@acme.example"]);
    let r = list_emails(&app, "acme", &token, "attr.MonthlyFee=12.500").await;
    assert_eq!(emails(&r), ["ada@acme.example", "bob@acme.example"]);
    let r = list_emails(
        &app,
        "acme",
        &token,
        "attr.MonthlyFee=12.5&attr.IsAuthRep=true",
    )
    .await;
    assert_eq!(emails(&r), ["ada@acme.example"]);
    let r = list_emails(&app, "acme", &token, "attr.MemberID=M-3&sort=name").await;
    assert_eq!(emails(&r), ["cy@acme.example"]);
    // Paging through a filtered list keeps the filter.
    let r = list_emails(&app, "acme", &token, "attr.IsAuthRep=true&limit=1").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r2 = list_emails(
        &app,
        "acme",
        &token,
        &format!("attr.IsAuthRep=true&limit=1&cursor={cursor}"),
    )
    .await;
    let mut both = emails(&r);
    both.extend(emails(&r2));
    both.sort();
    assert_eq!(both, ["ada@acme.example", "cy@acme.example"]);
    assert!(r2.body["next_cursor"].is_null());

    // Unknown attributes and ill-typed values are 400s naming the parameter.
    let r = list_emails(&app, "acme", &token, "attr.Nope=1").await;
    assert_problem(&r, 400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("attr.Nope"),
        "{}",
        r.text
    );
    let r = list_emails(&app, "acme", &token, "attr.MonthlyFee=cheap").await;
    assert_problem(&r, 400);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("attr.MonthlyFee"),
        "{}",
        r.text
    );
    let r = list_emails(&app, "acme", &token, "attr.IsAuthRep=maybe").await;
    assert_problem(&r, 400);
    // Other parameters are still checked.
    let r = list_emails(&app, "acme", &token, "attr.IsAuthRep=true&bogus=1").await;
    assert_problem(&r, 400);
}

#[tokio::test]
async fn another_orgs_attributes_are_unknown_and_its_values_invisible() {
    let app = spawn_app().await;
    let acme = app.org_with_admin("acme").await;
    let globex = app.org_with_admin("globex").await;
    standard_schema(&app, "acme", &acme).await;
    let r = add_with(
        &app,
        "acme",
        &acme,
        "ada@acme.example",
        json!({"MemberID": "M-1"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // globex knows none of acme's attributes, on any path.
    let r = app.get("/api/v1/orgs/globex/attributes", &globex).await;
    assert_eq!(r.body["items"], json!([]));
    let r = app
        .get("/api/v1/orgs/globex/attributes/MemberID", &globex)
        .await;
    assert_problem(&r, 404);
    let r = add_with(
        &app,
        "globex",
        &globex,
        "x@globex.example",
        json!({"MemberID": "M-1"}),
    )
    .await;
    assert_problem(&r, 422);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not an attribute")
    );
    let r = list_emails(&app, "globex", &globex, "attr.MemberID=M-1").await;
    assert_problem(&r, 400);
    // …and cannot reach acme's definitions with its token.
    let r = app.get("/api/v1/orgs/acme/attributes", &globex).await;
    assert_problem(&r, 404);
    let r = app
        .delete("/api/v1/orgs/acme/attributes/IsAuthRep", &globex)
        .await;
    assert_problem(&r, 404);
    let r = define(
        &app,
        "acme",
        &globex,
        json!({"name": "X", "type": "string"}),
    )
    .await;
    assert_problem(&r, 404);

    // The same name in globex is its own attribute; the value M-1 is free there.
    standard_schema(&app, "globex", &globex).await;
    let r = add_with(
        &app,
        "globex",
        &globex,
        "x@globex.example",
        json!({"MemberID": "M-1"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = list_emails(&app, "acme", &acme, "attr.MemberID=M-1").await;
    assert_eq!(emails(&r), ["ada@acme.example"]);
}

#[tokio::test]
async fn export_has_a_column_per_attribute_with_formulas_defused() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    standard_schema(&app, "acme", &token).await;
    let r = add_with(
        &app,
        "acme",
        &token,
        "ada@acme.example",
        json!({"MemberID": "=HYPERLINK(\"x\")", "IsAuthRep": true, "MonthlyFee": "12.50"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .get("/api/v1/orgs/acme/members/export.csv", &token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut rdr = csv::Reader::from_reader(r.text.as_bytes());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        &header[header.len() - 3..],
        ["IsAuthRep", "MemberID", "MonthlyFee"]
    );
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let ada = rows.iter().find(|r| &r[1] == "ada@acme.example").unwrap();
    let n = ada.len();
    assert_eq!(&ada[n - 3], "true");
    assert_eq!(&ada[n - 2], "'=HYPERLINK(\"x\")");
    assert_eq!(&ada[n - 1], "12.5");
    let owner = rows.iter().find(|r| &r[1] == "owner@acme.example").unwrap();
    assert_eq!(&owner[n - 2], "");

    // Chosen columns: the attributes only when asked for.
    let header_of = |text: &str| -> Vec<String> {
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        rdr.headers().unwrap().iter().map(str::to_owned).collect()
    };
    let r = app
        .get(
            "/api/v1/orgs/acme/members/export?columns=emails,attributes",
            &token,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        header_of(&r.text),
        [
            "Member email",
            "Login email",
            "Contact email",
            "IsAuthRep",
            "MemberID",
            "MonthlyFee"
        ]
    );
    assert!(
        r.text
            .contains("ada@acme.example,,,true,\"'=HYPERLINK(\"\"x\"\")\",12.5"),
        "{}",
        r.text
    );
    let r = app
        .get("/api/v1/orgs/acme/members/export?columns=emails", &token)
        .await;
    assert_eq!(
        header_of(&r.text),
        ["Member email", "Login email", "Contact email"]
    );
}

#[tokio::test]
async fn erasure_removes_values_and_blots_them_out_of_the_audit_log() {
    let app = spawn_app().await;
    let token = app.org_with_admin("acme").await;
    standard_schema(&app, "acme", &token).await;
    let r = add_with(
        &app,
        "acme",
        &token,
        "ada@acme.example",
        json!({"MemberID": "SECRET-77", "MonthlyFee": 3}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{id}/erase"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        detail(&app, "acme", &token, &id).await["attributes"],
        json!({})
    );
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/audit?member={id}&limit=200"),
            &token,
        )
        .await;
    assert!(!r.text.contains("SECRET-77"), "{}", r.text);
    assert!(r.text.contains("member.attributes_set"));
    // The value is free again, and the definition can go.
    let r = add_with(
        &app,
        "acme",
        &token,
        "bob@acme.example",
        json!({"MemberID": "SECRET-77"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut tx = app.store.read().await.unwrap();
    let org_id = app.org_id("acme").await;
    let left = rosterd::store::attributes::values_of(&mut tx, org_id, id.parse().unwrap())
        .await
        .unwrap();
    assert!(left.is_empty());
}

#[tokio::test]
async fn the_cli_defines_attributes_and_sets_a_members_values() {
    let cli = crate::cli::Cli::new().await;
    let (code, _, err) = cli
        .run(&[
            "org",
            "create",
            "acme",
            "--name",
            "Acme",
            "--owner-email",
            "boss@acme.example",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    for args in [
        vec![
            "attributes",
            "add",
            "acme",
            "MemberID",
            "--type",
            "string",
            "--unique",
        ],
        vec![
            "attributes",
            "add",
            "acme",
            "IsAuthRep",
            "--type",
            "boolean",
        ],
        vec![
            "attributes",
            "add",
            "acme",
            "MonthlyFee",
            "--type",
            "decimal",
        ],
        vec![
            "attributes",
            "add",
            "acme",
            "Tier",
            "--type",
            "choice",
            "--option",
            "Gold",
            "--option",
            "Silver",
        ],
    ] {
        let (code, out, err) = cli.run(&args).await;
        assert_eq!(code, 0, "{err}");
        let a: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(a["name"], args[3]);
    }
    let (code, out, err) = cli.run(&["attributes", "list", "acme"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "IsAuthRep\tboolean\t\t\nMemberID\tstring\tunique\t\nMonthlyFee\tdecimal\t\t\nTier\tchoice\t\tGold|Silver\n"
    );
    // Refusals exit 1 naming the problem, and change nothing.
    let (code, _, err) = cli
        .run(&["attributes", "add", "acme", "memberid", "--type", "integer"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("already has an attribute"), "{err}");
    let (code, _, err) = cli
        .run(&["attributes", "add", "acme", "X", "--type", "float"])
        .await;
    assert_ne!(code, 0);
    assert!(err.contains("float"), "{err}");

    let (code, out, err) = cli.run(&["members", "--org", "acme", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let owner: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let owner = owner["id"].as_str().unwrap().to_owned();
    let (code, out, err) = cli
        .run(&[
            "attributes",
            "set",
            "acme",
            &owner,
            "MemberID=M-1",
            "IsAuthRep=yes",
            "MonthlyFee=12.50",
            "tier=gold",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let values: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        values,
        json!({"MemberID": "M-1", "IsAuthRep": true, "MonthlyFee": "12.5", "Tier": "Gold"})
    );
    let (code, _, err) = cli
        .run(&["attributes", "set", "acme", &owner, "MonthlyFee=lots"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("attributes.MonthlyFee"), "{err}");
    let (code, out, err) = cli
        .run(&["attributes", "set", "acme", &owner, "Tier="])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("Tier"), "{out}");
    let (code, out, _) = cli.run(&["members", "show", "acme", &owner]).await;
    assert_eq!(code, 0);
    assert!(out.contains("attr     MonthlyFee = 12.5"), "{out}");
    assert!(out.contains("attr     IsAuthRep = true"), "{out}");
    let (code, out, err) = cli.run(&["attributes", "show", "acme", &owner]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"MemberID\":\"M-1\""), "{out}");
    // In use: not removable; unused: gone.
    let (code, _, err) = cli.run(&["attributes", "remove", "acme", "MemberID"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("hold a value"), "{err}");
    let (code, _, err) = cli.run(&["attributes", "remove", "acme", "Tier"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli
        .run(&[
            "attributes",
            "update",
            "acme",
            "IsAuthRep",
            "--required",
            "true",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"required\":true"), "{out}");
}

const ORG_USER: &str = "urn:ietf:params:scim:schemas:extension:rosterd:2.0:OrgUser";
const SCIM_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

#[tokio::test]
async fn scim_publishes_the_org_extension_and_reads_and_writes_it() {
    use reqwest::Method;
    let app = spawn_app().await;
    let (admin, scim) = app.scim_org("acme").await;
    standard_schema(&app, "acme", &admin).await;

    // Discovery: the extension is in the User resource type, and its schema lists the
    // attributes of the caller's org (an anonymous caller sees none).
    let r = app
        .scim(Method::GET, "/ResourceTypes/User", &scim, None)
        .await;
    let ext: Vec<&str> = r.body["schemaExtensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["schema"].as_str().unwrap())
        .collect();
    assert!(ext.contains(&ORG_USER), "{}", r.text);
    let r = app
        .scim(Method::GET, &format!("/Schemas/{ORG_USER}"), &scim, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let attrs = r.body["attributes"].as_array().unwrap();
    let mid = attrs.iter().find(|a| a["name"] == "MemberID").unwrap();
    assert_eq!(mid["uniqueness"], "server");
    assert_eq!(mid["type"], "string");
    let fee = attrs.iter().find(|a| a["name"] == "MonthlyFee").unwrap();
    assert_eq!(fee["type"], "decimal");
    let rep = attrs.iter().find(|a| a["name"] == "IsAuthRep").unwrap();
    assert_eq!(rep["type"], "boolean");
    let anon = app
        .client
        .get(app.url(&format!("/scim/v2/Schemas/{ORG_USER}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 200);
    let anon: Value = anon.json().await.unwrap();
    assert_eq!(anon["attributes"], json!([]));

    // POST with the extension.
    let r = app
        .scim(
            Method::POST,
            "/Users",
            &scim,
            Some(json!({
                "schemas": [SCIM_USER, ORG_USER],
                "userName": "ada@acme.example",
                ORG_USER: {"MemberID": "M-1", "IsAuthRep": "True", "MonthlyFee": 12.5}
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body[ORG_USER],
        json!({"MemberID": "M-1", "IsAuthRep": true, "MonthlyFee": 12.5})
    );
    assert!(
        r.body["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ORG_USER))
    );
    let id = r.body["id"].as_str().unwrap().to_owned();
    let d = app
        .get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
        .await;
    assert_eq!(d.body["attributes"]["MonthlyFee"], "12.5");

    // PATCH one extension attribute by its full path; the others stay.
    let r = app
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            &scim,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": format!("{ORG_USER}:IsAuthRep"), "value": false}]
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body[ORG_USER],
        json!({"MemberID": "M-1", "IsAuthRep": false, "MonthlyFee": 12.5})
    );
    // A filter on an extension attribute finds the user.
    let r = app
        .scim(
            Method::GET,
            &format!(
                "/Users?filter={}",
                urlencode(&format!("{ORG_USER}:MemberID eq \"M-1\""))
            ),
            &scim,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["totalResults"], 1, "{}", r.text);

    // Type errors are 400 invalidValue naming the attribute, and change nothing.
    let before = app.snapshot("acme").await;
    for ext in [
        json!({"MonthlyFee": "lots"}),
        json!({"IsAuthRep": "perhaps"}),
        json!({"Unknown": "x"}),
        json!({"MemberID": ["a", "b"]}),
    ] {
        let r = app
            .scim(
                Method::PUT,
                &format!("/Users/{id}"),
                &scim,
                Some(
                    json!({"schemas": [SCIM_USER], "userName": "ada@acme.example", ORG_USER: ext}),
                ),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.body["scimType"], "invalidValue", "{}", r.text);
        let name = ext.as_object().unwrap().keys().next().unwrap().clone();
        assert!(
            r.body["detail"].as_str().unwrap().contains(&name),
            "{}",
            r.text
        );
    }
    // A second user may not take a unique value.
    let r = app
        .scim(
            Method::POST,
            "/Users",
            &scim,
            Some(json!({"schemas": [SCIM_USER], "userName": "bob@acme.example", ORG_USER: {"MemberID": "M-1"}})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(app.snapshot("acme").await, before);

    // PUT without the extension leaves the values; with it, replaces the whole set.
    let r = app
        .scim(
            Method::PUT,
            &format!("/Users/{id}"),
            &scim,
            Some(json!({"schemas": [SCIM_USER], "userName": "ada@acme.example", "displayName": "Ada"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[ORG_USER]["MemberID"], "M-1");
    let r = app
        .scim(
            Method::PUT,
            &format!("/Users/{id}"),
            &scim,
            Some(json!({"schemas": [SCIM_USER], "userName": "ada@acme.example", ORG_USER: {"MemberID": "M-2"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body[ORG_USER], json!({"MemberID": "M-2"}));
    // The SCIM client's value changes are audited on the member.
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/audit?member={id}&limit=200"),
            &admin,
        )
        .await;
    let by_scim = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "member.attributes_set" && e["actor"]["kind"] == "scim_client")
        .count();
    assert_eq!(by_scim, 3, "{}", r.text);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
