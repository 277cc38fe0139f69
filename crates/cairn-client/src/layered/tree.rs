//! Configuration content as flat keys: flattening nested maps to dotted keys
//! (`registry.interval`), and gathering a subtree back into one value.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Flat configuration: dotted key → value.
pub(crate) type Flat = BTreeMap<String, Value>;

/// The leaves of a parsed document under dotted keys. Lists and scalars are leaves; the
/// document itself must be a map.
pub(crate) fn flatten(document: Value) -> Result<Flat, String> {
    let Value::Object(map) = document else {
        return Err(
            "its top level is not a map of keys, so it cannot be flattened \
                    (keep it whole instead)"
                .to_owned(),
        );
    };
    let mut flat = Flat::new();
    flatten_into(&mut flat, String::new(), map);
    Ok(flat)
}

fn flatten_into(flat: &mut Flat, prefix: String, map: Map<String, Value>) {
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) if !inner.is_empty() => flatten_into(flat, path, inner),
            leaf => {
                flat.insert(path, leaf);
            }
        }
    }
}

/// The value at `path`: its leaf, or the subtree of every key under `path.` built back
/// into nested maps (a whole-mode map at `path` is merged in, flattened keys winning);
/// `""` is everything. `None` when nothing is there.
pub(crate) fn subtree(flat: &Flat, path: &str) -> Option<Value> {
    let (leaf, children): (Option<&Value>, Vec<(&str, &Value)>) = if path.is_empty() {
        (None, flat.iter().map(|(k, v)| (k.as_str(), v)).collect())
    } else {
        let prefix = format!("{path}.");
        let children = flat
            .range::<str, _>((std::ops::Bound::Excluded(path), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix) || k.as_str() < prefix.as_str())
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|rest| (rest, v)))
            .collect();
        (flat.get(path), children)
    };
    if children.is_empty() {
        return leaf.cloned().or_else(|| inside_ancestor(flat, path));
    }
    let mut root = match leaf {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    for (rest, value) in children {
        insert(&mut root, rest, value.clone());
    }
    Some(Value::Object(root))
}

/// The value at `path` inside a map kept whole at one of its ancestors
/// (`routes./a` inside the value of `routes`), nearest ancestor first.
fn inside_ancestor(flat: &Flat, path: &str) -> Option<Value> {
    let mut split = path.len();
    while let Some(dot) = path[..split].rfind('.') {
        split = dot;
        if let Some(ancestor) = flat.get(&path[..dot]) {
            let mut value = ancestor;
            for part in path[dot + 1..].split('.') {
                value = value.as_object()?.get(part)?;
            }
            return Some(value.clone());
        }
    }
    None
}

/// Puts `value` at dotted `path` inside `map`, making maps on the way (a leaf in the
/// way is replaced: the deeper key is the more specific).
fn insert(map: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let slot = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse;
    use cairn_core::Format;
    use serde_json::json;

    #[test]
    fn nested_maps_flatten_to_dotted_keys_and_gather_back() {
        let doc = parse(
            Format::Yaml,
            "registry:\n  interval: 30\n  servers: [a, b]\n  tls: {}\nname: app\n",
        )
        .unwrap();
        let flat = flatten(doc).unwrap();
        assert_eq!(
            flat.keys().collect::<Vec<_>>(),
            [
                "name",
                "registry.interval",
                "registry.servers",
                "registry.tls"
            ]
        );
        assert_eq!(
            subtree(&flat, "registry").unwrap(),
            json!({"interval": 30, "servers": ["a", "b"], "tls": {}})
        );
        assert_eq!(subtree(&flat, "registry.interval").unwrap(), json!(30));
        assert_eq!(subtree(&flat, "regis"), None);
        assert_eq!(subtree(&flat, "registry.interval.x"), None);
        assert_eq!(subtree(&flat, "").unwrap()["name"], json!("app"));
    }

    #[test]
    fn keys_reach_inside_a_value_kept_whole() {
        let flat = Flat::from([("routes".to_owned(), json!({"/a": {"to": "x"}}))]);
        assert_eq!(subtree(&flat, "routes./a.to").unwrap(), json!("x"));
        assert_eq!(subtree(&flat, "routes./b"), None);
    }

    #[test]
    fn a_subtree_stops_at_its_own_keys() {
        let mut flat = Flat::new();
        flat.insert("a.b".into(), json!(1));
        flat.insert("a-b.c".into(), json!(2));
        flat.insert("a.c.d".into(), json!(3));
        flat.insert("ab.c".into(), json!(4));
        assert_eq!(subtree(&flat, "a").unwrap(), json!({"b": 1, "c": {"d": 3}}));
    }

    #[test]
    fn properties_and_toml_flatten_too() {
        let flat = flatten(parse(Format::Properties, "a.b=1\nc=x\n").unwrap()).unwrap();
        assert_eq!(flat["a.b"], json!("1"));
        let flat = flatten(parse(Format::Toml, "[db]\nport = 5432\n").unwrap()).unwrap();
        assert_eq!(flat["db.port"], json!(5432));
        assert!(flatten(parse(Format::Json, "[1, 2]").unwrap()).is_err());
        assert!(parse(Format::Json, "{").is_err());
    }
}
