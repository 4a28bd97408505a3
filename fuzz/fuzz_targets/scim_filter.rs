//! The SCIM filter parser, and evaluation of whatever parses, on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rosterd::scim::filter;
use rosterd::scim::schema::Rules;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(f) = filter::parse(text)
    {
        let user = serde_json::json!({
            "userName": "bjensen", "name": {"givenName": "Barbara"},
            "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
            "meta": {"lastModified": "2011-05-13T04:42:34Z"}
        });
        let _ = filter::matches(&f, &user, &Rules);
    }
});
