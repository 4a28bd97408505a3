//! Concurrent requests within one org: no lost updates, no duplicate members, no 500s from
//! deadlocks or constraint races (PostgreSQL runs these truly in parallel).

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn concurrent_adds_of_one_email_make_one_member() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    for round in 0..5 {
        let email = format!("same{round}@acme.example");
        let calls = (0..8).map(|_| {
            app.post(
                "/api/v1/orgs/acme/members",
                &admin,
                json!({"members": [{"email": email}]}),
            )
        });
        let results = join_all(calls).await;
        let mut outcomes: Vec<String> = results
            .iter()
            .map(|r| {
                assert_eq!(r.status, 200, "{}", r.text);
                r.body["results"][0]["outcome"].as_str().unwrap().to_owned()
            })
            .collect();
        outcomes.sort();
        assert_eq!(
            outcomes.iter().filter(|o| *o == "invited").count(),
            1,
            "{outcomes:?}"
        );
        let r = app
            .get(&format!("/api/v1/orgs/acme/members?email={email}"), &admin)
            .await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
        let mails = app
            .outbox("acme")
            .await
            .iter()
            .filter(|m| m.to_address == email)
            .count();
        assert_eq!(mails, 1, "one invitation only");
    }
}

#[tokio::test]
async fn opposing_bulk_removals_never_fail() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    for round in 0..4 {
        let emails: Vec<String> = (0..30)
            .map(|i| format!("r{round}-{i}@acme.example"))
            .collect();
        let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
        let ids = app.add("acme", &admin, &refs).await;
        let mut reversed = ids.clone();
        reversed.reverse();
        let (a, b) = tokio::join!(
            app.post(
                "/api/v1/orgs/acme/members/remove",
                &admin,
                json!({"member_ids": ids})
            ),
            app.post(
                "/api/v1/orgs/acme/members/remove",
                &admin,
                json!({"member_ids": reversed})
            ),
        );
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(b.status, 200, "{}", b.text);
        let removed = a.body["removed"].as_u64().unwrap() + b.body["removed"].as_u64().unwrap();
        assert_eq!(removed, 30, "each member removed exactly once");
    }
}

#[tokio::test]
async fn a_rename_never_undoes_the_integration_flag() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    for round in 0..10 {
        let (flag, rename) = tokio::join!(
            app.patch(
                "/api/v1/orgs/acme",
                OPERATOR,
                json!({"managed_by": format!("Okta {round}")})
            ),
            app.patch(
                "/api/v1/orgs/acme",
                &admin,
                json!({"name": format!("Acme {round}")})
            ),
        );
        assert_eq!(flag.status, 200, "{}", flag.text);
        assert_eq!(rename.status, 200, "{}", rename.text);
        let org = app.get("/api/v1/orgs/acme", &admin).await;
        assert_eq!(org.body["managed_by"], format!("Okta {round}"));
        assert_eq!(org.body["name"], format!("Acme {round}"));
    }
}

#[tokio::test]
async fn concurrent_ownership_transfers_leave_one_owner() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [
                {"email": "a1@acme.example", "role": "admin"},
                {"email": "a2@acme.example", "role": "admin"}
            ]}),
        )
        .await;
    let a1 = r.body["results"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a2 = r.body["results"][1]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.accept("acme", "a1@acme.example", None).await;
    app.accept("acme", "a2@acme.example", None).await;
    let transfer = |to: &str| {
        app.post(
            "/api/v1/orgs/acme/ownership",
            &admin,
            json!({ "member_id": to }),
        )
    };
    let owner = || async {
        let owners = app
            .get("/api/v1/orgs/acme/members?role=owner", &admin)
            .await;
        let items = owners.body["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1, "{}", owners.text);
        items[0]["id"].as_str().unwrap().to_owned()
    };

    // Two transfers to the same admin: exactly one succeeds, the other finds them owner already;
    // then the same from that owner to the other admin, who demotes them.
    for to in [&a1, &a2] {
        let (x, y) = tokio::join!(transfer(to), transfer(to));
        let mut statuses = [x.status.as_u16(), y.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{} / {}", x.text, y.text);
        let refused = if x.status == 409 { &x } else { &y };
        assert_eq!(refused.body["code"], "already_owner", "{}", refused.text);
        assert_eq!(&owner().await, to);
    }
    let m = app
        .get(&format!("/api/v1/orgs/acme/members/{a1}"), &admin)
        .await;
    assert_eq!(m.body["role"], "admin", "{}", m.text);
}
