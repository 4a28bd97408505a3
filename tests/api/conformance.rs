//! SCIM conformance: the PyPI package `scim2-tester` run against the daemon. `scripts/test`
//! installs it into `.venv-test/`; `ROSTERD_SCIM_TESTER_PYTHON` may name another interpreter.
//! Every result other than SUCCESS, COMPLIANT or ACCEPTABLE (DEVIATION, SKIPPED, ERROR,
//! CRITICAL) fails the run unless `tests/scim/conformance.py` accepts it by name with a reason;
//! the number of checks must be the one the README states.

use std::path::PathBuf;

use crate::helpers::*;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("ROSTERD_SCIM_TESTER_PYTHON") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python");
    assert!(
        p.exists(),
        "scim2-tester is not installed: run scripts/test (it creates .venv-test) or set ROSTERD_SCIM_TESTER_PYTHON"
    );
    p
}

/// The number of checks scim2-tester 0.5.2 runs against rosterd (the README says so too): a
/// change means checks were added or silently dropped.
const CHECKS: usize = 136;

#[tokio::test]
async fn scim2_tester_finds_no_failures() {
    let app = spawn_app().await;
    let (_, scim) = app.scim_org("conformance").await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scim/conformance.py");
    let out = tokio::process::Command::new(python())
        .arg(script)
        .arg(format!("{}/scim/v2", app.base))
        .arg(&scim)
        .output()
        .await
        .expect("run scim2-tester");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scim2-tester failed:\n{stdout}\n{stderr}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.ends_with(", 0 failed"), "{summary}");
    // It really ran, all of it: discovery plus CRUD and PATCH checks on both resource types.
    let checks: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    assert_eq!(checks, CHECKS, "{stdout}");
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .expect("README.md");
    assert!(
        readme.contains(&format!("{CHECKS} checks, 0 failures")),
        "the README must state the number of checks ({CHECKS})"
    );
}
