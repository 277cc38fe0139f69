//! Nacos's gRPC envelope (`nacos_grpc_service.proto`), declared with prost's derive:
//! two messages, so no `.proto` compiler at build time. The body is JSON inside an `Any`.

use std::collections::HashMap;

use serde::Serialize;

/// What a payload is and where it comes from.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// The Java class name of the body: `ConfigQueryRequest`, `ErrorResponse`, …
    #[prost(string, tag = "3")]
    pub r#type: String,
    #[prost(string, tag = "8")]
    pub client_ip: String,
    /// Request headers, among them `accessToken`.
    #[prost(map = "string, string", tag = "7")]
    pub headers: HashMap<String, String>,
}

/// Every message of both services.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<Metadata>,
    #[prost(message, optional, tag = "3")]
    pub body: Option<prost_types::Any>,
}

impl Payload {
    /// A payload of type `kind` whose body is `body` as JSON. Nacos's receivers dispatch
    /// on the metadata's type and ignore the `Any`'s type URL, which Java leaves empty.
    pub fn json(kind: &str, body: &impl Serialize) -> Payload {
        Payload {
            metadata: Some(Metadata {
                r#type: kind.to_owned(),
                ..Metadata::default()
            }),
            body: Some(prost_types::Any {
                type_url: String::new(),
                // Serializing plain structs and `Value`s into memory cannot fail.
                value: serde_json::to_vec(body).unwrap_or_default(),
            }),
        }
    }

    /// The metadata's type, `""` when absent.
    pub fn kind(&self) -> &str {
        self.metadata.as_ref().map_or("", |m| m.r#type.as_str())
    }

    /// The JSON body's bytes, empty when absent.
    pub fn body(&self) -> &[u8] {
        self.body.as_ref().map_or(&[], |b| b.value.as_slice())
    }

    /// A request header, from the metadata (Java and Rust clients) or the JSON body's own
    /// `headers` (the Python client also puts them there).
    pub fn header(&self, name: &str, body: &serde_json::Value) -> Option<String> {
        self.metadata
            .as_ref()
            .and_then(|m| m.headers.get(name).cloned())
            .or_else(|| body["headers"][name].as_str().map(str::to_owned))
            .filter(|v| !v.trim().is_empty())
    }
}
