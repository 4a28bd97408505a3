// PATCH bodies (arbitrary JSON) parsed and applied to a user document. Shared by the fuzz target
// and the normal test suite (`tests/api/fuzz_corpus.rs`), which replays the seeds.

use rosterd::scim::patch;

pub fn check(data: &[u8]) {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(ops) = patch::parse(&body)
    {
        let mut doc = serde_json::json!({
            "userName": "u", "emails": [{"value": "a@b.co", "type": "work"}],
            "members": [{"value": "1"}, {"value": "2"}]
        });
        let _ = patch::apply(&mut doc, &ops);
        let _ = rosterd::scim::resource::read_user(&doc);
    }
}
