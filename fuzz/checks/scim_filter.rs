// The SCIM filter parser, and evaluation of whatever parses, on arbitrary bytes. Shared by the
// fuzz target and the normal test suite (`tests/api/fuzz_corpus.rs`), which replays the seeds.

use rosterd::scim::filter;
use rosterd::scim::schema::Rules;

pub fn check(data: &[u8]) {
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
}
