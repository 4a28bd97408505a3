//! Ways out: removal with an alternative contact email (API and CLI), and its refusals.

use serde_json::json;

use crate::cli::Cli;
use crate::helpers::*;

#[tokio::test]
async fn removal_records_a_contact_email_that_past_members_show() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["ada@acme.example", "bo@acme.example"])
        .await;

    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{}/remove", ids[0]),
            &admin,
            json!({"contact_email": " ada@home.example "}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["access"], "removed");
    assert_eq!(r.body["contact_email"], "ada@home.example");

    // The list of past members shows it; the one read of the member too.
    let r = app
        .get("/api/v1/orgs/acme/members?access=removed", &admin)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["contact_email"], "ada@home.example");
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{}", ids[0]), &admin)
        .await;
    assert_eq!(r.body["contact_email"], "ada@home.example", "{}", r.text);

    // The removal is audited with the address it recorded.
    let r = app.get("/api/v1/orgs/acme/audit", &admin).await;
    let entry = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "member.removed")
        .unwrap_or_else(|| panic!("no removal entry: {}", r.text))
        .clone();
    assert_eq!(entry["after"]["contact_email"], "ada@home.example");

    // Without a body field, removal records none (and the DELETE form still works).
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{}/remove", ids[1]),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("contact_email").is_none(), "{}", r.text);

    // Re-added, a person is no longer a past member: the address is not shown.
    app.add("acme", &admin, &["ada@acme.example"]).await;
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{}", ids[0]), &admin)
        .await;
    assert_eq!(r.body["access"], "invited", "{}", r.text);
    assert!(r.body.get("contact_email").is_none(), "{}", r.text);
}

#[tokio::test]
async fn removal_with_a_contact_email_refuses_bad_input_owners_other_orgs_and_the_lock() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let other = app.org_with_admin("other").await;
    let ids = app.add("acme", &admin, &["ada@acme.example"]).await;
    let path = format!("/api/v1/orgs/acme/members/{}/remove", ids[0]);
    let before = app.snapshot("acme").await;

    let r = app
        .post(&path, &admin, json!({"contact_email": "not an email"}))
        .await;
    assert_problem(&r, 422);
    assert!(r.text.contains("contact_email"), "{}", r.text);
    let r = app
        .post(&path, &admin, json!({"contact": "ada@home.example"}))
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    assert!(r.text.contains("contact"), "{}", r.text);
    // Another org's admin sees no such org.
    let r = app
        .post(&path, &other, json!({"contact_email": "ada@home.example"}))
        .await;
    assert_problem(&r, 404);
    // A member id of another org is not found.
    let r = app
        .post(
            &format!("/api/v1/orgs/other/members/{}/remove", ids[0]),
            &other,
            json!({"contact_email": "ada@home.example"}),
        )
        .await;
    assert_problem(&r, 404);
    // The owner is never removed.
    let owner = app
        .get("/api/v1/orgs/acme/members?role=owner", &admin)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{owner}/remove"),
            &admin,
            json!({"contact_email": "boss@home.example"}),
        )
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["code"], "owner_cannot_be_removed");
    // An integration-managed org refuses it, naming the integration.
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": "Okta"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let locked = app.snapshot("acme").await;
    let r = app
        .post(&path, &admin, json!({"contact_email": "ada@home.example"}))
        .await;
    assert_problem(&r, 409);
    assert_eq!(r.body["integration"], "Okta");
    assert_eq!(app.snapshot("acme").await, locked, "nothing changed");
    let r = app
        .patch("/api/v1/orgs/acme", OPERATOR, json!({"managed_by": null}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The refusals before the lock changed no member either (the org's audit gained only the
    // two `managed_by` changes).
    let members_of = |s: &str| s.split('|').next().unwrap().to_owned();
    assert_eq!(
        members_of(&app.snapshot("acme").await),
        members_of(&before),
        "nothing changed"
    );
}

#[tokio::test]
async fn the_cli_removes_a_member_recording_a_contact_email() {
    let cli = Cli::new().await;
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
    let store = rosterd::store::Store::connect(&cli.url, 2).await.unwrap();
    let roster = rosterd::roster::Roster::new(
        store,
        std::sync::Arc::new(rosterd::clock::SystemClock),
        rosterd::roster::InviteSettings::from_config(&rosterd::config::Config::default()),
    );
    let org = roster.org_by_slug("acme").await.unwrap().unwrap();
    let added = roster
        .add_members(
            org.id,
            &rosterd::roster::Actor::Cli,
            vec![rosterd::roster::NewMember {
                email: "ada@acme.example".into(),
                role: None,
                given_name: None,
                family_name: None,
                display_name: None,
                groups: vec![],
            }],
        )
        .await
        .unwrap();
    let id = added[0].member_id.to_string();
    roster.store.close().await;
    let (code, out, err) = cli.run(&["members", "--org", "acme", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let owner = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["role"] == "owner")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (code, _, err) = cli
        .run(&["remove", "--org", "acme", &id, "--contact-email", "nope"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("contact_email"), "{err}");
    let (code, _, err) = cli.run(&["remove", "--org", "acme", &owner]).await;
    assert_eq!(code, 1);
    assert!(err.contains("owner"), "{err}");

    let (code, out, err) = cli
        .run(&[
            "remove",
            "--org",
            "acme",
            &id,
            "--contact-email",
            "ada@home.example",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["access"], "removed");
    assert_eq!(v["contact_email"], "ada@home.example");
    let (code, out, _) = cli
        .run(&["members", "--org", "acme", "--access", "removed", "--json"])
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("ada@home.example"), "{out}");
}
