//! Merging configs given with several `--config` flags.

use crate::value::Value;

/// Merges `overlay` onto `base` the way otelcol merges several `--config`
/// files: maps merge key by key, recursively; anything else in the overlay,
/// lists and nulls included, replaces what the base had.
///
/// New keys keep the base's order and are appended after it, so the merged
/// document still reads in the order it was written.
pub fn merge(base: Value, overlay: Value) -> Value {
    match (base, overlay) {
        (Value::Map(mut base), Value::Map(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(slot) => {
                        let old = std::mem::take(slot);
                        *slot = merge(old, value);
                    }
                    None => {
                        base.insert(key, value);
                    }
                }
            }
            Value::Map(base)
        }
        (_, overlay) => overlay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_yaml;

    fn yaml(text: &str) -> Value {
        parse_yaml(text, "test").unwrap()
    }

    #[test]
    fn maps_merge_lists_and_scalars_replace() {
        let base = yaml("a: {x: 1, y: [1, 2]}\nb: keep\nc: {z: 1}\n");
        let overlay = yaml("a: {y: [3], w: 4}\nc: ~\nd: new\n");
        let want = yaml("a: {x: 1, y: [3], w: 4}\nb: keep\nc: ~\nd: new\n");
        assert_eq!(merge(base, overlay), want);
    }
}
