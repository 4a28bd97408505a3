//! The binary: CLI commands against a fresh database, `serve` answering over HTTP, exit codes,
//! and SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_rosterd");

pub struct Cli {
    pub url: String,
    pub dir: std::path::PathBuf,
    config: std::path::PathBuf,
    _db: DbGuard,
}

impl Cli {
    pub async fn new() -> Cli {
        let (url, cleanup) = fresh_database().await;
        let dir =
            std::env::temp_dir().join(format!("rosterd-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("rosterd.toml");
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"{url}\"\n[mail]\nsink = \"file\"\ndir = \"{}\"\n[[orgs]]\nslug = \"demo\"\nname = \"Demo\"\nowner_email = \"owner@demo.example\"\n",
                dir.join("mail").display()
            ),
        )
        .unwrap();
        Cli {
            url,
            dir,
            config,
            _db: DbGuard(cleanup),
        }
    }

    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("ROSTERD_DATABASE_URL")
            .env_remove("ROSTERD_CONFIG")
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn cli_commands_and_exit_codes() {
    let cli = Cli::new().await;
    let (code, out, err) = cli.run(&["migrate"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("up to date"));

    let (code, out, err) = cli
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
    assert!(out.contains("created organization acme"));
    // The same slug again: failure, one line on stderr.
    let (code, _, err) = cli.run(&["org", "create", "acme", "--name", "Acme"]).await;
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    // Usage errors exit 2.
    let (code, _, _) = cli.run(&["org", "create"]).await;
    assert_eq!(code, 2);
    let (code, _, _) = cli
        .run(&["token", "create", "--org", "acme", "--kind", "root"])
        .await;
    assert_eq!(code, 2);
    let (code, _, err) = cli.run(&["members", "--org", "nope"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("nope"), "{err}");

    // The token is printed alone on stdout.
    let (code, token, err) = cli
        .run(&[
            "token", "create", "--org", "acme", "--kind", "admin", "--name", "ci",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_owned();
    assert!(token.starts_with("rst_") && !token.contains(' '), "{token}");
    assert_eq!(token.lines().count(), 1);

    let (code, out, _) = cli.run(&["members", "--org", "acme"]).await;
    assert_eq!(code, 0);
    assert!(
        out.lines().nth(1).unwrap().contains("boss@acme.example"),
        "{out}"
    );
    let (code, out, _) = cli
        .run(&["members", "--org", "acme", "--access", "removed"])
        .await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "header only: {out}");
    let (code, out, _) = cli
        .run(&["members", "--org", "acme", "--json", "--search", "BOSS"])
        .await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["role"], "owner");

    let file = cli.dir.join("out.csv");
    let (code, _, err) = cli
        .run(&[
            "export",
            "--org",
            "acme",
            "--output",
            file.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(&file).unwrap();
    assert!(csv.starts_with(
        "Name,Member email,Login email,Access,Role,Activity date,Added date,Points,Monthly fee,Total paid,Currency\n"
    ));
    assert!(csv.contains("boss@acme.example,,invited,owner,"), "{csv}");

    // Revoke by id (printed on stderr at creation).
    let (_, _, err) = cli
        .run(&["token", "create", "--org", "acme", "--kind", "admin"])
        .await;
    let id = err.split_whitespace().nth(2).unwrap().to_owned();
    let (code, out, _) = cli.run(&["token", "revoke", &id]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&id));
    let (code, _, _) = cli.run(&["token", "revoke", &id]).await;
    assert_eq!(code, 1);
    // --database-url overrides the config file's (unreachable) database.
    let other = cli.dir.join("other.toml");
    std::fs::write(
        &other,
        "[database]\nurl = \"postgres://nobody@127.0.0.1:1/none\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&other)
        .args(["--database-url", &cli.url, "org", "list"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme"));
    // An explicit config file that does not exist is an error.
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/rosterd.toml", "org", "list"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rosterd.toml"));
}

#[tokio::test]
async fn serve_answers_over_http_and_stops_on_sigterm() {
    let cli = Cli::new().await;
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cli.config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = first.split_whitespace().nth(3).unwrap().to_owned();
    assert!(
        first.starts_with("rosterd listening on http://127.0.0.1:"),
        "{first}"
    );
    let hint = lines.next_line().await.unwrap().unwrap();
    assert!(
        hint.contains("rosterd token create --org demo --kind admin"),
        "{hint}"
    );

    // The configured demo org exists; a token made by the CLI works against the server.
    let (code, token, _) = cli
        .run(&["token", "create", "--org", "demo", "--kind", "admin"])
        .await;
    assert_eq!(code, 0);
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{addr}/api/v1/orgs/demo/members"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["items"][0]["member_email"], "owner@demo.example");
    // The owner's invitation was written by the file sink.
    wait_for(10, "invitation file", || async {
        std::fs::read_dir(cli.dir.join("mail"))
            .map(|d| d.count() == 1)
            .unwrap_or(false)
    })
    .await;

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}
