//! The audit log records every change with actor, before and after, and pages by cursor.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn changes_are_audited_with_actor_and_before_after() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let id = app.add("acme", &admin, &["ada@acme.example"]).await[0];
    app.patch(
        &format!("/api/v1/orgs/acme/members/{id}"),
        &admin,
        json!({"role": "admin"}),
    )
    .await;
    app.accept("acme", "ada@acme.example", None).await;
    app.delete(&format!("/api/v1/orgs/acme/members/{id}"), OPERATOR)
        .await;

    let r = app.get("/api/v1/orgs/acme/audit", &admin).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.body["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "member.removed",
            "member.enrolled",
            "member.updated",
            "member.added",
            "token.created",
            "member.added",
            "org.created"
        ]
    );
    let removed = &items[0];
    assert_eq!(removed["actor"]["kind"], "operator");
    assert_eq!(removed["before"]["access"], "enrolled");
    assert_eq!(removed["after"]["access"], "removed");
    assert_eq!(removed["subject"]["id"], id.to_string());
    assert_eq!(items[1]["actor"]["kind"], "invitee");
    let updated = &items[2];
    assert_eq!(updated["actor"]["kind"], "admin_token");
    assert_eq!(updated["before"]["role"], "member");
    assert_eq!(updated["after"]["role"], "admin");
    assert!(items[3]["before"].is_null());
    // Tokens are audited without their secret hash.
    assert!(!r.text.contains("secret_hash"), "{}", r.text);

    // Paging: 3 + 3 + 1, no overlap.
    let mut seen = Vec::new();
    let mut path = "/api/v1/orgs/acme/audit?limit=3".to_owned();
    loop {
        let r = app.get(&path, &admin).await;
        seen.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/orgs/acme/audit?limit=3&cursor={c}"),
            None => break,
        }
    }
    let all: Vec<String> = items
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, all);
}
