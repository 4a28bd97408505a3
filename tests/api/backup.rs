//! `rosterd backup FILE`: an online, consistent copy of a SQLite database taken while the
//! daemon writes, restored by starting a daemon on it; refused over an existing file and on
//! PostgreSQL (which has pg_dump).

use serde_json::json;
use tokio::process::Command;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_rosterd");

async fn backup(url: &str, dir: &std::path::Path, file: &std::path::Path) -> (i32, String) {
    let config = dir.join("backup.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{url}\"\n")).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("backup")
        .arg(file)
        .env_remove("ROSTERD_DATABASE_URL")
        .env_remove("ROSTERD_CONFIG")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn member_emails(app: &TestApp, slug: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = app
            .get(
                &format!("/api/v1/orgs/{slug}/members?limit=200{cursor}"),
                OPERATOR,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        v.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["member_email"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    v.sort();
    v
}

#[tokio::test]
async fn a_backup_taken_while_writing_restores_to_a_working_daemon() {
    let dir =
        std::env::temp_dir().join(format!("rosterd-backup-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/live.db", dir.display());
    let live_url = url.clone();
    let app = spawn_with(Mail::Log, move |c| c.database.url = live_url).await;
    let admin = app.org_with_admin("acme").await;
    app.allow_invites("acme", 500).await;
    let before: Vec<String> = (0..20)
        .map(|i| format!("early{i:02}@acme.example"))
        .collect();
    let refs: Vec<&str> = before.iter().map(String::as_str).collect();
    app.add("acme", &admin, &refs).await;

    // Writers keep adding members while the backup runs.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (base, admin, writing) = (app.base.clone(), admin.clone(), writing.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0;
            while writing.load(std::sync::atomic::Ordering::SeqCst) {
                let r = client
                    .post(format!("{base}/api/v1/orgs/acme/members"))
                    .bearer_auth(&admin)
                    .json(&json!({"members": [{"email": format!("late{n}@acme.example")}]}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let file = dir.join("copy.db");
    let (code, out) = backup(&url, &dir, &file).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("backed up"), "{out}");
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert!(written > 0, "the writer wrote during the backup");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds personal data");
    }
    // Over an existing file: refused, the file untouched.
    let size = std::fs::metadata(&file).unwrap().len();
    let (code, out) = backup(&url, &dir, &file).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("already exists"), "{out}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);

    // Restore: a daemon started on the copy serves the org, its admin token and every member
    // written before the backup began; what it has of the late writers is a consistent prefix.
    let live = member_emails(&app, "acme").await;
    let copy_url = format!("sqlite://{}", file.display());
    let restored = spawn_with(Mail::Log, move |c| c.database.url = copy_url).await;
    let r = restored
        .get("/api/v1/orgs/acme/members?limit=10", &admin)
        .await;
    assert_eq!(
        r.status, 200,
        "the admin token works on the restored copy: {}",
        r.text
    );
    let copied = member_emails(&restored, "acme").await;
    for e in &before {
        assert!(copied.contains(e), "{e} is in the copy");
    }
    assert!(
        copied.len() < live.len(),
        "later writes are not in the copy"
    );
    let late_in_copy = copied.iter().filter(|e| e.starts_with("late")).count();
    for n in 0..late_in_copy {
        assert!(
            copied.contains(&format!("late{n}@acme.example")),
            "the copy is one moment: late{n} precedes a later write in it"
        );
    }
    // And it takes writes.
    restored.add("acme", &admin, &["after@acme.example"]).await;
    drop(restored);
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgres_is_backed_up_with_pg_dump_not_here() {
    let (url, cleanup) = fresh_postgres_database().await;
    let _guard = DbGuard(cleanup);
    let dir =
        std::env::temp_dir().join(format!("rosterd-backup-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("copy.db");
    let (code, out) = backup(&url, &dir, &file).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("pg_dump"), "{out}");
    assert!(!file.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
