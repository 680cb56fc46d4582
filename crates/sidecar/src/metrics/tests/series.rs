//! Reading samples back out of an exposition text, for PromQL-style matching in tests. Shared
//! by the unit tests and the mesh end-to-end test (`tests/sidecar/mesh.rs` includes this file).

use std::collections::BTreeMap;

/// The samples of `family` in an exposition text, as label maps.
pub(crate) fn series(text: &str, family: &str) -> Vec<BTreeMap<String, String>> {
    let mut found = Vec::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else { continue };
        if name != family {
            continue;
        }
        let Some((labels, _value)) = rest.rsplit_once("} ") else {
            panic!("a sample without a value: {line}");
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",") {
            let Some((key, value)) = pair.split_once("=\"") else {
                panic!("a label without a quoted value: {pair}");
            };
            map.insert(key.to_owned(), value.trim_end_matches('"').to_owned());
        }
        found.push(map);
    }
    found
}
