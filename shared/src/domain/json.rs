//! JSON bodies whose objects repeat a key: serde keeps one of the values silently, so a
//! webhook or API body with two `alert_uid`s or two `summary`s is refused instead.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// The path (`a.b[2].c`) of the first key an object of `body` repeats; `None` when no
/// object repeats a key or when `body` is not JSON at all (the real parse reports that).
pub fn first_repeated_key(body: &[u8]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match (KeysOnce { path: String::new() }).deserialize(&mut de) {
        Err(e) => e.to_string().strip_prefix(MARK).map(|rest| {
            // serde_json appends " at line L column C"; the path is what came before.
            rest.rsplit_once(" at line ").map_or(rest, |(path, _)| path).to_string()
        }),
        Ok(()) => None,
    }
}

const MARK: &str = "repeated key: ";

/// Walks a JSON value, failing on the first object that names a key twice.
struct KeysOnce {
    path: String,
}

impl KeysOnce {
    fn child(&self, step: &str) -> KeysOnce {
        let path = if self.path.is_empty() || step.starts_with('[') {
            format!("{}{step}", self.path)
        } else {
            format!("{}.{step}", self.path)
        };
        KeysOnce { path }
    }
}

impl<'de> DeserializeSeed<'de> for KeysOnce {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeysOnce {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq.next_element_seed(self.child(&format!("[{i}]")))?.is_some() {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if !seen.insert(key) {
                return Err(A::Error::custom(format!("{MARK}{}", child.path)));
            }
            map.next_value_seed(child)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::first_repeated_key;

    #[test]
    fn a_repeated_key_is_named_by_its_path_at_any_depth() {
        assert_eq!(
            first_repeated_key(br#"{"alert_uid": "a", "alert_uid": "b"}"#).as_deref(),
            Some("alert_uid")
        );
        assert_eq!(
            first_repeated_key(br#"{"x": [{"y": 1}, {"y": 2, "z": {"k": 1, "k": 1}}]}"#).as_deref(),
            Some("x[1].z.k")
        );
    }

    #[test]
    fn keys_repeated_only_across_objects_and_non_json_pass() {
        assert_eq!(
            first_repeated_key(br#"{"a": {"b": 1}, "c": {"b": 2}, "d": [1, "b"]}"#),
            None
        );
        assert_eq!(first_repeated_key(br#"[{"a": 1}, {"a": 1}]"#), None);
        assert_eq!(first_repeated_key(b"not json"), None);
        assert_eq!(first_repeated_key(b""), None);
    }
}
