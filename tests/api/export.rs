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
            "Added date",
            "Points",
            "Monthly fee",
            "Total paid",
            "Currency"
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
    assert_eq!(&ada[7], "0");
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

/// Cells a spreadsheet would run as a formula are defused in the export, also when the formula
/// sign is full-width or follows whitespace, and when the cell starts with a tab or CR.
#[tokio::test]
async fn export_defuses_every_formula_form() {
    let app = spawn_app().await;
    let admin = app.org_with_admin("acme").await;
    // Full-width signs come in through the API as they are.
    let names = ["＝1+1", "＋49", "－x", "＠SUM(A1)"];
    let members: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"email": format!("fw{i}@acme.example"), "display_name": n}))
        .collect();
    let r = app
        .post(
            "/api/v1/orgs/acme/members",
            &admin,
            json!({ "members": members }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The API trims names and refuses control characters; what is already stored (an older
    // version, a hand-edited database) is defused all the same.
    let raw = [" =1+1", "\t=1+1", "\r=1+1", "\u{3000}@x"];
    let ids = app
        .add(
            "acme",
            &admin,
            &[
                "r0@acme.example",
                "r1@acme.example",
                "r2@acme.example",
                "r3@acme.example",
            ],
        )
        .await;
    let org_id = app.org_id("acme").await;
    let mut tx = app.store.write().await.unwrap();
    for (id, name) in ids.iter().zip(raw) {
        let mut m = rosterd::store::members::by_id(&mut tx, org_id, *id, true)
            .await
            .unwrap()
            .unwrap();
        m.display_name = Some(name.to_owned());
        rosterd::store::members::update(&mut tx, &mut m)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

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
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let name_of = |email: &str| {
        rows.iter()
            .find(|r| &r[1] == email)
            .unwrap_or_else(|| panic!("{email} missing"))[0]
            .to_owned()
    };
    for (i, n) in names.iter().enumerate() {
        assert_eq!(name_of(&format!("fw{i}@acme.example")), format!("'{n}"));
    }
    for (i, n) in raw.iter().enumerate() {
        // (The Name column is the trimmed name; what follows the `'` is never a formula.)
        let cell = name_of(&format!("r{i}@acme.example"));
        assert!(cell.starts_with('\''), "{cell:?}");
        assert_eq!(cell[1..].trim_start(), n.trim_start(), "{cell:?}");
    }
}

async fn upload(app: &TestApp, body: Vec<u8>) -> serde_json::Value {
    let r = app
        .client
        .post(app.url("/api/v1/orgs/acme/imports?filename=people.csv"))
        .bearer_auth(OPERATOR)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn errors_csv(app: &TestApp, job: &serde_json::Value) -> Vec<csv::StringRecord> {
    let path = format!(
        "/api/v1/orgs/acme/imports/{}/errors.csv",
        job["id"].as_str().unwrap()
    );
    let r = app.get(&path, OPERATOR).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut reader = csv::Reader::from_reader(r.text.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["line", "external_id", "field", "value", "message"]
    );
    reader.records().map(Result::unwrap).collect()
}

/// An import's `errors.csv` repeats the offending values: they are defused like the export's,
/// full-width signs included; so are stored values with leading whitespace, tab or CR (the CSV
/// reader trims cells, other sources may not).
#[tokio::test]
async fn import_error_reports_defuse_formulas() {
    let app = spawn_app().await;
    app.org_with_admin("acme").await;
    let bad = ["＝1+1", "＋1", "－1", "＠SUM(A1)", " ＝1", "=1+1"];
    let mut csv = String::from("email\r\n");
    for v in bad {
        csv.push_str(&format!("\"{v}\"\r\n"));
    }
    let job = upload(&app, csv.into_bytes()).await;
    assert_eq!(job["status"], "invalid", "{job}");
    assert_eq!(job["counts"]["errors"], bad.len(), "{job}");
    let raw = [" =1+1", "\t=1+1", "\r=1+1", "\u{3000}@x"];
    let run_id: uuid::Uuid = job["id"].as_str().unwrap().parse().unwrap();
    let extra: Vec<rosterd::store::sync::RunError> = raw
        .iter()
        .enumerate()
        .map(|(i, v)| rosterd::store::sync::RunError {
            seq: (bad.len() + i + 1) as i64,
            line: 100 + i as i64,
            external_id: Some(v.to_string()),
            field: Some("email".into()),
            value: Some(v.to_string()),
            message: "not an email address".into(),
        })
        .collect();
    let mut tx = app.store.write().await.unwrap();
    rosterd::store::sync::insert_errors(&mut tx, run_id, &extra)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let rows = errors_csv(&app, &job).await;
    assert_eq!(rows.len(), bad.len() + raw.len());
    for (row, v) in rows.iter().zip(bad.iter().chain(raw.iter())) {
        let v = if row[0].parse::<i64>().unwrap() < 100 {
            v.trim()
        } else {
            v
        };
        assert_eq!(&row[3], format!("'{v}"), "{row:?}");
        // The id column (the email, trimmed) is defused too.
        assert!(row[1].starts_with('\''), "{row:?}");
    }
}

/// A huge cell comes back cut short (with an ellipsis) in the job's JSON and in `errors.csv`.
#[tokio::test]
async fn a_huge_cell_is_truncated_in_error_rows() {
    let app = spawn_app().await;
    app.org_with_admin("acme").await;
    let huge = "é".repeat(2 * 1024 * 1024);
    let csv = format!("email,first_name\r\nok@acme.example,Ok\r\n{huge},Huge\r\n");
    let job = upload(&app, csv.into_bytes()).await;
    assert_eq!(job["status"], "invalid", "{job:.300}");
    let row = &job["error_rows"][0];
    for key in ["value", "external_id"] {
        let v = row[key].as_str().unwrap();
        // 200 characters kept, and the ellipsis.
        assert!(
            v.chars().count() <= 201,
            "{key}: {} chars",
            v.chars().count()
        );
        assert!(v.ends_with('…'), "{key}: {v}");
        assert!(v.starts_with("éé"), "{key}: {v}");
    }
    let rows = errors_csv(&app, &job).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][0], "3");
    assert!(rows[0][3].chars().count() <= 201, "{:?}", &rows[0][3]);
    assert!(rows[0][3].ends_with('…'));
}
