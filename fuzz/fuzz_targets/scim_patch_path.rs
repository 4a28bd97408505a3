//! The SCIM PATCH path parser on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../checks/scim_patch_path.rs");

fuzz_target!(|data: &[u8]| {
    check(data);
});
