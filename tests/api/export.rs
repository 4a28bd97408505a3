//! CSV export of current and past members.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn export_lists_current_and_past_members_safely() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [
                {"email": "ada@acme.example", "given_name": "Ada", "family_name": "Lovelace"},
                {"email": "evil@acme.example", "display_name": "=HYPERLINK(\"http://x\",\"y\")"},
                {"email": "gone@acme.example", "given_name": "Gone, \"Quoted\""}
            ]}),
        )
        .await;
    let gone = r.body["results"][2]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.accept("acme", "ada@acme.example", Some("ada@login.example"))
        .await;
    app.post(
        "/api/v1/orgs/acme/members/remove",
        &admin,
        json!({"member_ids": [gone]}),
    )
    .await;

    let res = app
        .client
        .get(app.url("/api/v1/orgs/acme/members/export.csv"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("acme-members.csv")
    );
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        headers,
        [
            "Name",
            "Member email",
            "Login email",
            "Access",
            "Role",
            "Activity date",
            "Added date"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4, "owner, ada, evil and the removed member");
    let row = |email: &str| {
        rows.iter()
            .find(|r| &r[1] == email)
            .unwrap_or_else(|| panic!("{email} missing"))
    };
    let ada = row("ada@acme.example");
    assert_eq!(&ada[0], "Ada Lovelace");
    assert_eq!(&ada[2], "ada@login.example");
    assert_eq!(&ada[3], "enrolled");
    assert_eq!(&ada[6], "2026-03-02T09:00:00Z");
    assert_eq!(
        &row("evil@acme.example")[0],
        "'=HYPERLINK(\"http://x\",\"y\")"
    );
    assert_eq!(
        &row("evil@acme.example")[2],
        "",
        "no login email before enrolment"
    );
    let gone = row("gone@acme.example");
    assert_eq!(&gone[0], "Gone, \"Quoted\"");
    assert_eq!(&gone[3], "removed");
}

#[tokio::test]
async fn export_streams_many_batches() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    // More than two store batches (1000 each).
    app.allow_invites("acme", 800).await;
    for chunk in 0..3 {
        let members: Vec<_> = (0..800)
            .map(|i| json!({"email": format!("m{chunk}-{i}@acme.example")}))
            .collect();
        let r = app
            .post(
                "/api/v1/orgs/acme/members",
                &admin,
                json!({"members": members}),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let text = app
        .client
        .get(app.url("/api/v1/orgs/acme/members/export.csv"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let emails: std::collections::HashSet<String> =
        reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
    assert_eq!(emails.len(), 2401);
}
