//! Deserializing configuration values the way people write them: environment variables,
//! command-line arguments and properties files carry only strings, so a string is also
//! accepted where a number, a bool (`true`/`yes`/`on`/`1` and their opposites, in any
//! case) or a unit enum variant is expected, and a number or bool where a string is.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Value;

/// A value deserialized leniently; see the module docs.
pub(crate) struct Lenient(pub Value);

type Error = serde_json::Error;

impl<'de> IntoDeserializer<'de, Error> for Lenient {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// Deserializes `T` from `value`, leniently.
pub(crate) fn from_value<T: de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    T::deserialize(Lenient(value))
}

macro_rules! parse_from_str {
    ($($method:ident => $visit:ident as $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            if let Value::String(s) = &self.0 {
                if let Ok(parsed) = s.trim().parse::<$ty>() {
                    return visitor.$visit(parsed);
                }
            }
            self.deserialize_any(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Lenient {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => {
                // Keys too: a map keyed by numbers is written with string keys.
                let mut access = MapDeserializer::new(
                    map.into_iter()
                        .map(|(k, v)| (Lenient(Value::String(k)), Lenient(v))),
                );
                let value = visitor.visit_map(&mut access)?;
                access.end()?;
                Ok(value)
            }
            Value::Array(items) => {
                let mut access = SeqDeserializer::new(items.into_iter().map(Lenient));
                let value = visitor.visit_seq(&mut access)?;
                access.end()?;
                Ok(value)
            }
            other => de::Deserializer::deserialize_any(other, visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if let Value::String(s) = &self.0 {
            // As properties files and environments write them.
            match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => return visitor.visit_bool(true),
                "false" | "no" | "off" | "0" => return visitor.visit_bool(false),
                _ => {}
            }
        }
        self.deserialize_any(visitor)
    }

    parse_from_str! {
        deserialize_i8 => visit_i64 as i64,
        deserialize_i16 => visit_i64 as i64,
        deserialize_i32 => visit_i64 as i64,
        deserialize_i64 => visit_i64 as i64,
        deserialize_i128 => visit_i128 as i128,
        deserialize_u8 => visit_u64 as u64,
        deserialize_u16 => visit_u64 as u64,
        deserialize_u32 => visit_u64 as u64,
        deserialize_u64 => visit_u64 as u64,
        deserialize_u128 => visit_u128 as u128,
        deserialize_f32 => visit_f64 as f64,
        deserialize_f64 => visit_f64 as f64,
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Number(n) => visitor.visit_string(n.to_string()),
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            other => Lenient(other).deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Lenient(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            other => other.deserialize_enum(name, variants, visitor),
        }
    }

    forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Safe,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Registry {
        interval: u64,
        ratio: f64,
        enabled: bool,
        name: String,
        zone: Option<String>,
        mode: Mode,
        servers: Vec<String>,
    }

    #[test]
    fn strings_become_what_the_type_asks_for() {
        let value = json!({
            "interval": "30", "ratio": "0.5", "enabled": "true", "name": 7,
            "zone": null, "mode": "safe", "servers": ["a", "b"]
        });
        assert_eq!(
            from_value::<Registry>(value).unwrap(),
            Registry {
                interval: 30,
                ratio: 0.5,
                enabled: true,
                name: "7".to_owned(),
                zone: None,
                mode: Mode::Safe,
                servers: vec!["a".to_owned(), "b".to_owned()],
            }
        );
        assert_eq!(from_value::<Mode>(json!("fast")).unwrap(), Mode::Fast);
        for (text, value) in [
            ("TRUE", true),
            ("yes", true),
            ("on", true),
            ("0", false),
            ("Off", false),
        ] {
            assert_eq!(from_value::<bool>(json!(text)).unwrap(), value, "{text}");
        }
        assert_eq!(from_value::<u16>(json!(8080)).unwrap(), 8080);
        let ports: std::collections::BTreeMap<u16, String> =
            from_value(json!({"80": "http", "443": "https"})).unwrap();
        assert_eq!(ports[&443], "https");
    }

    #[test]
    fn what_cannot_be_converted_is_an_error_that_names_it() {
        let err = from_value::<u64>(json!("thirty")).unwrap_err().to_string();
        assert!(err.contains("thirty"), "{err}");
        assert!(from_value::<u8>(json!("300")).is_err());
        assert!(from_value::<bool>(json!("yes please")).is_err());
    }
}
