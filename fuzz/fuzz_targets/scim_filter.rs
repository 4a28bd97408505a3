//! The SCIM filter parser, and evaluation of whatever parses, on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../checks/scim_filter.rs");

fuzz_target!(|data: &[u8]| {
    check(data);
});
