//! The layering rule of ARCHITECTURE.md, checked on the source: the HTTP surfaces (`api`,
//! `scim`, `console`) depend on `web` and the core, never on each other, and the core never on
//! a surface.

use std::path::{Path, PathBuf};

const SURFACES: &[&str] = &["api", "scim", "console"];
const CORE: &[&str] = &["domain", "store", "roster", "reconcile", "sync", "mail"];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Every `crate::NAME` a module's files mention, with the file and line.
fn mentions(module: &str, names: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut files = rust_files(&src.join(module));
    files.push(src.join(format!("{module}.rs")));
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for name in names {
                if *name != module && line.contains(&format!("crate::{name}")) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn no_surface_imports_another() {
    for surface in SURFACES {
        let bad = mentions(surface, SURFACES);
        assert!(
            bad.is_empty(),
            "`{surface}` reaches into another surface:\n{}",
            bad.join("\n")
        );
    }
    // The shared module sees no surface except where `web::router` mounts them.
    let web: Vec<String> = mentions("web", SURFACES)
        .into_iter()
        .filter(|l| !l.contains("::router("))
        .collect();
    assert!(
        web.is_empty(),
        "`web` depends on a surface:\n{}",
        web.join("\n")
    );
}

#[test]
fn the_core_knows_no_http_surface() {
    let mut names = SURFACES.to_vec();
    names.push("web");
    for core in CORE {
        let bad = mentions(core, &names);
        assert!(
            bad.is_empty(),
            "`{core}` depends on an HTTP module:\n{}",
            bad.join("\n")
        );
    }
}

#[test]
fn the_check_sees_the_sources() {
    // Guards the two tests above against passing because they read nothing.
    let api = mentions("api", &["web"]);
    let scim = mentions("scim", &["web"]);
    let console = mentions("console", &["web"]);
    assert!(
        !api.is_empty() && !scim.is_empty() && !console.is_empty(),
        "no `crate::web` use found in api, scim or console"
    );
}

#[test]
fn the_console_writes_no_sql_and_holds_no_rules() {
    // Pages call `Roster` operations and read through `store`; no statement text of their own.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console");
    let files = rust_files(&src);
    assert!(!files.is_empty(), "no console sources found");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            assert!(
                !line.contains("sqlx::") && !line.contains("on_tx!"),
                "{}:{}: the console runs SQL: {}",
                file.display(),
                n + 1,
                line.trim()
            );
        }
    }
}
