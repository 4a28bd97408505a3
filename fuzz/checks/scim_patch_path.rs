// The SCIM PATCH path parser on arbitrary bytes. Shared by the fuzz target and the normal test
// suite (`tests/api/fuzz_corpus.rs`), which replays the seeds.

pub fn check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rosterd::scim::filter::parse_patch_path(text);
    }
}
