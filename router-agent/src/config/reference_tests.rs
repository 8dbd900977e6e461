//! `docs/configuration.md` names every key the parser accepts. The keys come from the config
//! types themselves: a recording deserializer walks `Config`'s `Deserialize` impls and keeps
//! the field lists serde's derive hands to `deserialize_struct` (with `deny_unknown_fields`,
//! exactly the keys accepted), one path at a time. A key added to a config struct and not to
//! the reference fails this test.

use std::{cell::RefCell, collections::BTreeSet, fmt};

use serde::{
    Deserialize,
    de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor},
};

use super::Config;

const REFERENCE: &str = include_str!("../../../docs/configuration.md");

/// Stands for any key of a map (`[bgp.prefix_list.<name>]`).
const ANY_NAME: &str = "<name>";

/// Keys behind hand-written `Deserialize` impls that take a table through `deserialize_any`
/// (the recorder cannot see their field lists): `import`/`export = { prefix_list = "..." }`.
const BEHIND_DESERIALIZE_ANY: &[&str] = &[
    "bgp.neighbor.import.prefix_list",
    "bgp.neighbor.export.prefix_list",
    "bgp.dynamic_neighbor.import.prefix_list",
    "bgp.dynamic_neighbor.export.prefix_list",
];

#[derive(Debug)]
struct Leaf;

impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("leaf")
    }
}

impl std::error::Error for Leaf {}

impl de::Error for Leaf {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Leaf
    }
}

/// One pass: follows `path` (field names, [`ANY_NAME`] for a map's key) down the types and
/// records the keys of the table at its end.
#[derive(Clone, Copy)]
struct Recorder<'a> {
    path: &'a [String],
    depth: usize,
    found: &'a RefCell<Option<Vec<String>>>,
}

impl Recorder<'_> {
    fn at_end(&self) -> bool {
        self.depth == self.path.len()
    }

    fn deeper(self) -> Self {
        Self {
            depth: self.depth + 1,
            ..self
        }
    }
}

/// A table holding only the key the path goes through.
struct OneKey<'a> {
    key: Option<&'a str>,
    value: Recorder<'a>,
}

impl<'de> MapAccess<'de> for OneKey<'_> {
    type Error = Leaf;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Leaf> {
        match self.key.take() {
            Some(key) => seed
                .deserialize(de::value::StrDeserializer::<Leaf>::new(key))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Leaf> {
        seed.deserialize(self.value)
    }
}

/// An array of one element (an array of tables: `[[interface]]`).
struct OneElement<'a>(Option<Recorder<'a>>);

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Leaf;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Leaf> {
        match self.0.take() {
            Some(recorder) => seed.deserialize(recorder).map(Some),
            None => Ok(None),
        }
    }
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Leaf;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Leaf> {
        Err(Leaf)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Leaf> {
        if self.at_end() {
            *self.found.borrow_mut() = Some(fields.iter().map(|f| (*f).to_owned()).collect());
            return Err(Leaf);
        }
        let key = self.path[self.depth].as_str();
        if !fields.contains(&key) {
            return Err(Leaf);
        }
        visitor.visit_map(OneKey {
            key: Some(key),
            value: self.deeper(),
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Leaf> {
        if self.at_end() {
            *self.found.borrow_mut() = Some(vec![ANY_NAME.to_owned()]);
            return Err(Leaf);
        }
        if self.path[self.depth] != ANY_NAME {
            return Err(Leaf);
        }
        visitor.visit_map(OneKey {
            key: Some("name"),
            value: self.deeper(),
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Leaf> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Leaf> {
        visitor.visit_seq(OneElement(Some(self)))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Leaf> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct enum identifier ignored_any
    }
}

/// Every key path the parser accepts, e.g. `bgp.neighbor.hold_time`.
fn accepted_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut paths: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = paths.pop() {
        assert!(path.len() < 10, "runaway path {path:?}");
        let found = RefCell::new(None);
        let _ = Config::deserialize(Recorder {
            path: &path,
            depth: 0,
            found: &found,
        });
        for field in found.into_inner().unwrap_or_default() {
            let mut deeper = path.clone();
            deeper.push(field);
            keys.insert(deeper.join("."));
            paths.push(deeper);
        }
    }
    keys.extend(BEHIND_DESERIALIZE_ANY.iter().map(|key| (*key).to_owned()));
    keys
}

/// The keys the reference names: `` `a.b.c` `` in its text.
fn documented(reference: &str) -> BTreeSet<String> {
    reference
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_recorder_finds_keys_at_every_depth() {
    let keys = accepted_keys();
    for key in [
        "datapath.pin_dir",
        "datapath.follow_kernel_routes.tables",
        "interface.rpf",
        "route.nexthops.via",
        "bgp.neighbor.max_prefix.limit",
        "bgp.prefix_list.<name>.ipv4.prefix",
        "drain.state_file",
    ] {
        assert!(keys.contains(key), "{key} not found in {keys:#?}");
    }
}

#[test]
fn the_reference_names_every_accepted_key() {
    let documented = documented(REFERENCE);
    let missing: Vec<String> = accepted_keys()
        .into_iter()
        .filter(|key| !documented.contains(key))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md misses these keys (write each as `full.dotted.key`):\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_missing_key_is_reported() {
    let without = REFERENCE.replace("`datapath.pin_dir`", "datapath pin directory");
    let documented = documented(&without);
    assert!(accepted_keys().iter().any(|key| !documented.contains(key)));
}

/// Every `toml` block of the reference is a configuration the agent accepts.
#[test]
fn the_reference_examples_are_valid() {
    let blocks: Vec<&str> = REFERENCE
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default())
        .collect();
    assert!(!blocks.is_empty());
    for block in blocks {
        if let Err(err) = Config::parse(block, std::path::Path::new("docs/configuration.md")) {
            panic!("{err}\nin:\n{block}");
        }
    }
}
