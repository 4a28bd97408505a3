//! Listing, filtering, searching, sorting and paging members; adding and the state machine.

use std::collections::HashSet;

use chrono::Duration;
use serde_json::{Value, json};

use crate::helpers::*;

fn emails(r: &Res) -> Vec<String> {
    r.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.text))
        .iter()
        .map(|m| m["member_email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn adding_invites_and_queues_an_email() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [
                {"email": "Ada@Acme.example", "role": "admin", "given_name": "Ada", "family_name": "Lovelace"},
                {"email": "bo@acme.example"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["results"][0]["outcome"], "invited");
    assert_eq!(r.body["results"][0]["access"], "invited");
    let id = r.body["results"][0]["member_id"].as_str().unwrap();
    let m = app
        .get(&format!("/api/v1/orgs/acme/members/{id}"), &admin)
        .await;
    assert_eq!(m.body["name"], "Ada Lovelace");
    assert_eq!(m.body["role"], "admin");
    assert_eq!(m.body["member_email"], "Ada@Acme.example");
    assert_eq!(m.body["invite_count"], 1);
    assert_eq!(m.body["activity"]["kind"], "invite_sent");
    assert!(
        m.body.get("login_email").is_none(),
        "no login email before enrolment"
    );
    let mail: Vec<String> = app
        .outbox("acme")
        .await
        .iter()
        .map(|r| r.to_address.clone())
        .collect();
    assert!(
        mail.contains(&"Ada@Acme.example".to_owned())
            && mail.contains(&"bo@acme.example".to_owned())
    );
    // Adding the same person again (any case) changes nothing.
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "ADA@acme.EXAMPLE"}]}),
        )
        .await;
    assert_eq!(r.body["results"][0]["outcome"], "already_member");
    assert_eq!(app.outbox("acme").await.len(), 3, "owner + 2, no new email");
}

#[tokio::test]
async fn the_access_state_machine() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add("acme", &admin, &["ada@acme.example", "bo@acme.example"])
        .await;
    let (ada, bo) = (ids[0], ids[1]);

    // invited -> enrolled, signing in with another address.
    let r = app
        .accept("acme", "ada@acme.example", Some("ada.l@idp.example"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["access"], "enrolled");
    assert_eq!(r.body["login_email"], "ada.l@idp.example");
    assert_eq!(r.body["activity"]["kind"], "last_active");
    // The link cannot be used twice.
    let again = app.accept("acme", "ada@acme.example", None).await;
    assert_problem(&again, 409);

    // Activity moves the activity date.
    app.clock.advance(Duration::days(3));
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/members/{ada}/activity"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["last_active_at"], r.body["activity"]["at"]);
    // Invited members cannot be active.
    let r = app
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/orgs/acme/members/{bo}/activity"),
            Some(&admin),
            None,
        )
        .await;
    assert_problem(&r, 409);

    // enrolled -> removed -> re-added: enrolled again at once, no email.
    let r = app
        .delete(&format!("/api/v1/orgs/acme/members/{ada}"), &admin)
        .await;
    assert_eq!(r.body["access"], "removed", "{}", r.text);
    assert_eq!(r.body["activity"]["kind"], "removed");
    let mails_before = app.outbox("acme").await.len();
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "ada@acme.example"}]}),
        )
        .await;
    assert_eq!(r.body["results"][0]["outcome"], "reenrolled", "{}", r.text);
    assert_eq!(r.body["results"][0]["access"], "enrolled");
    assert_eq!(app.outbox("acme").await.len(), mails_before);

    // invited -> removed -> re-added: invited again with a new email; old link is dead.
    let old_token = app.invitation_token("acme", "bo@acme.example").await;
    app.post(
        "/api/v1/orgs/acme/members/remove",
        &admin,
        json!({"member_ids": [bo]}),
    )
    .await;
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/invitations/accept",
            None,
            Some(json!({"token": old_token})),
        )
        .await;
    assert_problem(&r, 410);
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [{"email": "bo@acme.example"}]}),
        )
        .await;
    assert_eq!(r.body["results"][0]["outcome"], "reinvited", "{}", r.text);
    assert_eq!(app.outbox("acme").await.len(), mails_before + 1);
    let r = app.accept("acme", "bo@acme.example", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body.get("login_email").is_none(),
        "same as member email: not shown"
    );
}

#[tokio::test]
async fn expired_invitation_links_are_refused() {
    // No reminders: each would carry a fresh link.
    let app = spawn_with(Mail::Files, |c| c.invitations.reminders = 0).await;
    let admin = app.org_with_admin("acme").await;
    app.add("acme", &admin, &["late@acme.example"]).await;
    // The email arrives; the invitee follows the link a month later.
    let token = app.invitation_token("acme", "late@acme.example").await;
    app.clock.advance(Duration::days(31));
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/invitations/accept",
            None,
            Some(json!({ "token": token })),
        )
        .await;
    assert_problem(&r, 410);
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/invitations/accept",
            None,
            Some(json!({"token": "not-a-token"})),
        )
        .await;
    assert_problem(&r, 404);
}

#[tokio::test]
async fn resend_only_emails_invited_members() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let ids = app
        .add(
            "acme",
            &admin,
            &["a@acme.example", "b@acme.example", "c@acme.example"],
        )
        .await;
    app.accept("acme", "b@acme.example", None).await;
    app.post(
        "/api/v1/orgs/acme/members/remove",
        &admin,
        json!({"member_ids": [ids[2]]}),
    )
    .await;
    let before = app.outbox("acme").await.len();
    app.clock.advance(Duration::hours(5));
    let missing = uuid::Uuid::now_v7();
    let r = app
        .post(
            "/api/v1/orgs/acme/members/resend-invites",
            &admin,
            json!({"member_ids": [ids[0], ids[1], ids[2], missing]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["sent"], 1);
    assert_eq!(r.body["skipped"], 3);
    let outcomes: Vec<&str> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "sent",
            "skipped_enrolled",
            "skipped_removed",
            "skipped_not_found"
        ]
    );
    assert!(
        r.body["results"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("enrolled")
    );
    assert_eq!(app.outbox("acme").await.len(), before + 1);
    let m = app
        .get(&format!("/api/v1/orgs/acme/members/{}", ids[0]), &admin)
        .await;
    assert_eq!(m.body["invite_count"], 2);
    assert_eq!(m.body["invited_at"], m.body["activity"]["at"]);
    assert_ne!(
        m.body["invited_at"], m.body["added_at"],
        "invited_at moved with the resend"
    );
}

#[tokio::test]
async fn list_views_filters_search_and_sorting() {
    // No reminders: they would move activity dates while the clock jumps.
    let app = spawn_with(Mail::Files, |c| c.invitations.reminders = 0).await;
    let admin = app.org_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({"members": [
                {"email": "zed@acme.example", "given_name": "Zed", "family_name": "Quinn", "role": "admin"},
                {"email": "amy@acme.example", "display_name": "Amy Pond"},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200);
    app.clock.advance(Duration::days(10));
    let later = app
        .add("acme", &admin, &["rory@other.example", "gone@acme.example"])
        .await;
    app.accept("acme", "rory@other.example", Some("RORY@login.example"))
        .await;
    app.post(
        "/api/v1/orgs/acme/members/remove",
        &admin,
        json!({"member_ids": [later[1]]}),
    )
    .await;

    let list = |q: &str| {
        let app = &app;
        let admin = admin.clone();
        let q = q.to_owned();
        async move {
            app.get(&format!("/api/v1/orgs/acme/members?{q}"), &admin)
                .await
        }
    };
    // Default view: invited + enrolled, newest first.
    let r = list("").await;
    // Same join time: newest id first.
    assert_eq!(
        emails(&r),
        [
            "rory@other.example",
            "amy@acme.example",
            "zed@acme.example",
            "owner@acme.example"
        ]
    );
    assert_eq!(
        emails(&list("access=enrolled").await),
        ["rory@other.example"]
    );
    assert_eq!(emails(&list("access=removed").await), ["gone@acme.example"]);
    assert_eq!(
        emails(&list("access=invited&sort=email&order=asc").await),
        ["amy@acme.example", "owner@acme.example", "zed@acme.example"]
    );
    assert_eq!(emails(&list("role=admin").await), ["zed@acme.example"]);
    assert_eq!(emails(&list("role=owner").await), ["owner@acme.example"]);
    // Joined date range (dates are inclusive days).
    assert_eq!(
        emails(&list("joined_to=2026-03-02&sort=email").await),
        ["amy@acme.example", "owner@acme.example", "zed@acme.example"]
    );
    assert_eq!(
        emails(&list("joined_from=2026-03-12").await),
        ["rory@other.example"]
    );
    assert_eq!(
        emails(&list("joined_from=2026-03-12T00:00:00Z&access=removed").await),
        ["gone@acme.example"]
    );
    // Search: case-insensitive, in names, member and login emails; wildcards are literal.
    assert_eq!(emails(&list("q=QUINN").await), ["zed@acme.example"]);
    assert_eq!(emails(&list("q=amy%20p").await), ["amy@acme.example"]);
    assert_eq!(
        emails(&list("q=login.EXAMPLE").await),
        ["rory@other.example"]
    );
    assert_eq!(emails(&list("q=%25").await), Vec::<String>::new());
    assert_eq!(
        emails(&list("email=ZED@acme.example").await),
        ["zed@acme.example"]
    );
    // Sorting by name.
    assert_eq!(
        emails(&list("sort=name&order=asc").await),
        [
            "amy@acme.example",
            "owner@acme.example",
            "rory@other.example",
            "zed@acme.example"
        ]
    );
    // Rows carry login_email only where it differs, and the activity column.
    let r = list("access=enrolled").await;
    assert_eq!(r.body["items"][0]["login_email"], "RORY@login.example");
    assert_eq!(r.body["items"][0]["activity"]["kind"], "last_active");
    let r = list("access=removed").await;
    assert_eq!(r.body["items"][0]["activity"]["kind"], "removed");
    // Counts per view.
    let c = app.get("/api/v1/orgs/acme/members/counts", &admin).await;
    assert_eq!(
        c.body,
        json!({"all": 4, "invited": 3, "enrolled": 1, "removed": 1, "cancelled": 0, "disabled": 0})
    );
}

#[tokio::test]
async fn cursor_pagination_walks_every_member_once_in_every_sort() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    // 130 members over several "days", with duplicate names to exercise tie-breaking.
    app.allow_invites("acme", 26).await;
    for batch in 0..5 {
        let members: Vec<Value> = (0..26)
            .map(|i| json!({"email": format!("p{batch}-{i}@acme.example"), "given_name": format!("Name{}", i % 7)}))
            .collect();
        let r = app
            .post(
                "/api/v1/orgs/acme/members",
                &admin,
                json!({"members": members}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        app.clock.advance(Duration::hours(1));
    }
    for (sort, order) in [
        ("added", "desc"),
        ("added", "asc"),
        ("name", "asc"),
        ("name", "desc"),
        ("email", "asc"),
        ("activity", "desc"),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/api/v1/orgs/acme/members?limit=17&sort={sort}&order={order}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let r = app.get(&path, &admin).await;
            assert_eq!(r.status, 200, "{}", r.text);
            seen.extend(emails(&r));
            pages += 1;
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 131, "{sort} {order}");
        assert_eq!(
            seen.iter().collect::<HashSet<_>>().len(),
            131,
            "{sort} {order}: duplicates"
        );
        assert_eq!(pages, 8);
        if sort == "email" {
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(seen, sorted);
        }
    }
    // A cursor from one sort is refused by another.
    let r = app
        .get("/api/v1/orgs/acme/members?limit=5&sort=name", &admin)
        .await;
    let c = r.body["next_cursor"].as_str().unwrap();
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/members?sort=email&cursor={c}"),
            &admin,
        )
        .await;
    assert_problem(&r, 400);
}

#[tokio::test]
async fn role_and_name_changes() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let id = app.add("acme", &admin, &["ada@acme.example"]).await[0];
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{id}"),
            &admin,
            json!({"role": "admin", "given_name": "Ada"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["role"], "admin");
    assert_eq!(r.body["name"], "Ada");
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{id}"),
            &admin,
            json!({"role": "owner"}),
        )
        .await;
    assert_problem(&r, 422);
    assert_eq!(r.body["errors"][0]["field"], "role");
}

#[tokio::test]
async fn names_that_look_like_dates_page_by_name() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    let members: Vec<Value> = [
        "2026-01-01T00:00:00Z",
        "2026-01-02 00:00:00+00:00",
        "1999-12-31",
        "plain",
    ]
    .iter()
    .enumerate()
    .map(|(i, n)| json!({"email": format!("d{i}@acme.example"), "display_name": n}))
    .collect();
    app.post(
        "/api/v1/orgs/acme/members",
        &admin,
        json!({"members": members}),
    )
    .await;
    let mut seen = 0;
    let mut path = "/api/v1/orgs/acme/members?sort=name&limit=1".to_owned();
    loop {
        let r = app.get(&path, &admin).await;
        assert_eq!(r.status, 200, "{}", r.text);
        seen += r.body["items"].as_array().unwrap().len();
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/orgs/acme/members?sort=name&limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, 5);
}

#[tokio::test]
async fn token_use_is_recorded() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    app.get("/api/v1/orgs/acme/members", &admin).await;
    wait_for(10, "last_used_at", || async {
        let r = app.get("/api/v1/orgs/acme/tokens", OPERATOR).await;
        !r.body["items"][0]["last_used_at"].is_null()
    })
    .await;
}

/// Filtered pages over more members than the first look-ahead window: common matches come from
/// the window, rare ones from the selective index; both page correctly by cursor.
#[tokio::test]
async fn filtered_paging_beyond_the_window() {
    let app = spawn_with(Mail::Log, |c| {
        c.invitations.reminders = 0;
        c.server.max_body_bytes = 1024 * 1024;
    })
    .await;
    let admin = app.org_with_admin("acme").await;
    app.allow_invites("acme", 800).await;
    for chunk in 0..3 {
        let members: Vec<Value> = (0..800)
            .map(|i| {
                let n = chunk * 800 + i;
                let name = if n % 3 == 0 {
                    format!("Common Person {n}")
                } else {
                    format!("Plain Person {n}")
                };
                let name = if n == 5 || n == 2100 {
                    format!("Rarest Zebra {n}")
                } else {
                    name
                };
                let role = if n == 7 || n == 2200 {
                    "admin"
                } else {
                    "member"
                };
                json!({"email": format!("p{n}@acme.example"), "display_name": name, "role": role})
            })
            .collect();
        let r = app
            .post(
                "/api/v1/orgs/acme/members",
                &admin,
                json!({"members": members}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        app.clock.advance(Duration::minutes(1));
    }
    let walk = |query: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let mut out = Vec::new();
            let mut path = format!("/api/v1/orgs/acme/members?limit=50&{query}");
            loop {
                let r = app.get(&path, &admin).await;
                assert_eq!(r.status, 200, "{}", r.text);
                out.extend(emails(&r));
                match r.body["next_cursor"].as_str() {
                    Some(c) => {
                        path = format!("/api/v1/orgs/acme/members?limit=50&{query}&cursor={c}")
                    }
                    None => break,
                }
            }
            out
        }
    };
    let common = walk("q=common&sort=email&order=asc").await;
    let mut want: Vec<String> = (0..2400)
        .filter(|n| n % 3 == 0 && *n != 2100)
        .map(|n| format!("p{n}@acme.example"))
        .collect();
    want.sort();
    assert_eq!(common, want);
    let rare = walk("q=zebra").await;
    assert_eq!(rare, ["p2100@acme.example", "p5@acme.example"]);
    let admins = walk("role=admin&sort=email&order=asc").await;
    assert_eq!(admins, ["p2200@acme.example", "p7@acme.example"]);
    let two_letters = walk("q=ze").await;
    assert_eq!(two_letters.len(), 2);
}
