//! A config's content as JSON values, for checking it against a JSON Schema: JSON as
//! is, each YAML document, a TOML table, and Java properties as one flat object of
//! strings (`server.port=80` is `{"server.port": "80"}`; properties carry no types).

use serde::Deserialize as _;
use serde_json::{Map, Number, Value};

use crate::Format;

/// The documents `content` holds, or `None` for formats without a structure (text,
/// XML, HTML). A YAML config may hold several documents; the others hold one.
pub fn documents(format: Format, content: &str) -> Option<Result<Vec<Value>, String>> {
    let parsed = match format {
        Format::Text | Format::Xml | Format::Html => return None,
        Format::Json => serde_json::from_str(content)
            .map(|v| vec![v])
            .map_err(|e| e.to_string()),
        Format::Yaml => yaml_documents(content),
        Format::Toml => content
            .parse::<toml::Table>()
            .map(|t| vec![toml_value(toml::Value::Table(t))])
            .map_err(|e| e.message().to_owned()),
        Format::Properties => crate::properties::parse(content)
            .map(|pairs| {
                let object = pairs.into_iter().map(|(k, v)| (k, Value::String(v)));
                vec![Value::Object(object.collect())]
            })
            .map_err(|e| e.to_string()),
    };
    Some(parsed)
}

fn yaml_documents(content: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(content) {
        let value = serde_yaml_ng::Value::deserialize(document).map_err(|e| e.to_string())?;
        out.push(yaml_value(value));
    }
    Ok(out)
}

/// YAML's keys may be numbers or booleans; JSON's are strings, so they are written as
/// YAML writes them. Tags are dropped; the tagged value stays.
fn yaml_value(value: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => yaml_number(&n),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_value).collect()),
        Y::Mapping(map) => {
            let mut object = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_owned(),
                    other => serde_yaml_ng::to_string(&other)
                        .unwrap_or_default()
                        .trim_end()
                        .to_owned(),
                };
                object.insert(key, yaml_value(v));
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => yaml_value(tagged.value),
    }
}

fn yaml_number(n: &serde_yaml_ng::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Number(i.into())
    } else if let Some(u) = n.as_u64() {
        Value::Number(u.into())
    } else {
        // NaN and the infinities have no JSON form; they stay visible as text.
        n.as_f64()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(n.to_string()), Value::Number)
    }
}

/// TOML's dates and times are strings in JSON (RFC 3339, as TOML writes them).
fn toml_value(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::Number(i.into()),
        toml::Value::Float(f) => {
            Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_value).collect()),
        toml::Value::Table(table) => {
            Value::Object(table.into_iter().map(|(k, v)| (k, toml_value(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(format: Format, content: &str) -> Value {
        let mut docs = documents(format, content).unwrap().unwrap();
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn each_structured_format_becomes_json() {
        let want = json!({"server": {"port": 8080, "tls": true}});
        assert_eq!(
            one(Format::Yaml, "server:\n  port: 8080\n  tls: true\n"),
            want
        );
        assert_eq!(
            one(Format::Toml, "[server]\nport = 8080\ntls = true\n"),
            want
        );
        assert_eq!(
            one(Format::Json, r#"{"server":{"port":8080,"tls":true}}"#),
            want
        );
        assert_eq!(
            one(Format::Properties, "server.port=8080\nserver.tls=true\n"),
            json!({"server.port": "8080", "server.tls": "true"})
        );
    }

    #[test]
    fn yaml_keys_and_documents_and_toml_dates() {
        assert_eq!(
            one(Format::Yaml, "1: one\ntrue: yes\n"),
            json!({"1": "one", "true": "yes"})
        );
        let docs = documents(Format::Yaml, "a: 1\n---\nb: 2\n")
            .unwrap()
            .unwrap();
        assert_eq!(docs, [json!({"a": 1}), json!({"b": 2})]);
        assert_eq!(
            one(Format::Toml, "at = 1979-05-27T07:32:00Z\n"),
            json!({"at": "1979-05-27T07:32:00Z"})
        );
    }

    #[test]
    fn unstructured_formats_have_no_documents_and_bad_content_says_why() {
        assert!(documents(Format::Text, "anything").is_none());
        assert!(documents(Format::Xml, "<a/>").is_none());
        let err = documents(Format::Json, "{").unwrap().unwrap_err();
        assert!(err.contains("EOF"), "{err}");
    }
}
