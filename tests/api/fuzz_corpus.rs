//! The fuzz targets' inputs replayed in the normal suite: every file of each target's committed
//! seeds (`fuzz/seeds/<target>`) and regressions (`fuzz/regressions/<target>`: crashers found by
//! fuzzing, kept once fixed), plus a local `fuzz/corpus` and `fuzz/artifacts` when present. The
//! check is the targets' own code (`fuzz/checks/`), so a crasher fails here as it did there.

use std::path::{Path, PathBuf};

mod scim_filter {
    include!("../../fuzz/checks/scim_filter.rs");
}
mod scim_patch {
    include!("../../fuzz/checks/scim_patch.rs");
}
mod scim_patch_path {
    include!("../../fuzz/checks/scim_patch_path.rs");
}

/// Every input file of `target`, and how many came from the committed seeds.
fn inputs(target: &str) -> (Vec<PathBuf>, usize) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    let mut seeds = 0;
    for dir in ["seeds", "regressions", "corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_file() {
                files.push(path);
                if dir == "seeds" {
                    seeds += 1;
                }
            }
        }
    }
    files.sort();
    (files, seeds)
}

fn replay(target: &str, check: fn(&[u8])) {
    let (files, seeds) = inputs(target);
    assert!(seeds > 0, "no committed seeds for {target}");
    for f in files {
        let data = std::fs::read(&f).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target} panicked on {}", f.display());
    }
}

#[test]
fn scim_filter_inputs_replay_cleanly() {
    replay("scim_filter", scim_filter::check);
}

#[test]
fn scim_patch_inputs_replay_cleanly() {
    replay("scim_patch", scim_patch::check);
}

#[test]
fn scim_patch_path_inputs_replay_cleanly() {
    replay("scim_patch_path", scim_patch_path::check);
}
