//! A config's content read as one value by its format. YAML and TOML are optional
//! features, so that a client that never reads them typed need not depend on their
//! parsers.

use cairn_core::Format;
use serde_json::Value;

/// Parses `content` as `format` into one value: yaml, json and toml as trees, properties
/// as a map of strings, anything else as the text itself.
pub(crate) fn parse(format: Format, content: &str) -> Result<Value, String> {
    match format {
        Format::Yaml => yaml(content),
        Format::Json => serde_json::from_str(content).map_err(|e| e.to_string()),
        Format::Toml => toml(content),
        Format::Properties => cairn_core::properties::parse(content)
            .map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                )
            })
            .map_err(|e| e.to_string()),
        Format::Text | Format::Xml | Format::Html => Ok(Value::String(content.to_owned())),
    }
}

#[cfg(feature = "yaml")]
fn yaml(content: &str) -> Result<Value, String> {
    if content.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_yaml_ng::from_str(content).map_err(|e| e.to_string())
}

#[cfg(not(feature = "yaml"))]
fn yaml(_: &str) -> Result<Value, String> {
    Err("cairn-client was built without its `yaml` feature".to_owned())
}

#[cfg(feature = "toml")]
fn toml(content: &str) -> Result<Value, String> {
    toml::from_str(content).map_err(|e| e.to_string())
}

#[cfg(not(feature = "toml"))]
fn toml(_: &str) -> Result<Value, String> {
    Err("cairn-client was built without its `toml` feature".to_owned())
}
