//! PATCH bodies (arbitrary JSON) parsed and applied to a user document.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../checks/scim_patch.rs");

fuzz_target!(|data: &[u8]| {
    check(data);
});
