//! The native API's contract, completed where one rule covers many operations: the
//! error answers each kind of operation can give (with the error body and its codes),
//! the name rules every name parameter follows, page bounds, and the one policy on
//! unknown request properties (refused). Handlers declare what is their own (their
//! success answers, conflicts, bodies); this adds what the shared extractors, auth and
//! the store make possible everywhere, so the document cannot drift from them.

use serde_json::{json, Map, Value};

/// Characters of a name (namespace, group, data id, tag, user or role name); `-` last,
/// so that it stands for itself in a character class.
const NAME: &str = "A-Za-z0-9_.:";

/// What a named parameter or property accepts: an exact name of at most `max`
/// characters, or (`wildcards`) a pattern in which `*` matches any run of characters.
fn name_schema(max: usize, wildcards: bool) -> Value {
    let star = if wildcards { "*" } else { "" };
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": max,
        "pattern": format!("^[{NAME}{star}-]+$"),
    })
}

/// A pattern that may be left empty (meaning: any).
fn optional_pattern(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max, "pattern": format!("^[{NAME}*-]*$") })
}

fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

fn bounded(min: u64, max: u64) -> Value {
    json!({ "type": "integer", "format": "int64", "minimum": min, "maximum": max })
}

/// The constraints of a path or query parameter, by its name; `current` is what the
/// handler declared (its type decides between names that mean two things).
fn parameter_schema(path: &str, name: &str, location: &str, current: &Value) -> Option<Value> {
    let integer = current["type"] == "integer";
    // Filters of grants and of the audit log match any text (patterns included), but
    // a grant's subject is a name (or empty for any).
    let filter = location == "query" && matches!(path, "/api/v1/grants" | "/api/v1/audit");
    if filter && path == "/api/v1/grants" && matches!(name, "user" | "role") {
        return Some(
            json!({ "type": "string", "maxLength": 64, "pattern": format!("^[{NAME}-]*$") }),
        );
    }
    if filter && !matches!(name, "page" | "page_size" | "from" | "to") {
        return None;
    }
    Some(match (name, location) {
        ("namespace" | "group" | "data_id" | "username" | "role" | "app_id", "path") => {
            match name {
                "data_id" => name_schema(256, false),
                "username" | "role" => name_schema(64, false),
                "app_id" => {
                    json!({ "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]*$" })
                }
                _ => name_schema(128, false),
            }
        }
        // A query's namespace is a name, or empty for none; its group and data id are
        // wildcards matched against names, so any text is a (maybe empty) filter.
        ("namespace", _) => {
            json!({ "type": "string", "maxLength": 128, "pattern": format!("^[{NAME}-]*$") })
        }
        ("status", _) => one_of(&["", "open", "approved", "rejected", "stale"]),
        // A deletion's compare-and-set names the md5 being deleted.
        ("cas_md5", "query") => json!({ "type": "string", "pattern": "^[0-9a-f]{32}$" }),
        ("view", _) => one_of(&["raw", "json"]),
        ("format", _) if path.ends_with("/export") => one_of(&["", "nacos", "cairn"]),
        ("policy", _) => one_of(&["", "abort", "skip", "overwrite"]),
        ("ip", _) => {
            json!({ "type": "string", "anyOf": [{ "format": "ipv4" }, { "format": "ipv6" }] })
        }
        _ => return named(name, integer),
    })
}

/// Parameters that mean the same wherever they are.
fn named(name: &str, integer: bool) -> Option<Value> {
    Some(match name {
        "page" => bounded(1, u64::from(u32::MAX)),
        "page_size" => bounded(1, 500),
        "revision" | "id" | "delivery" => bounded(1, i64::MAX as u64),
        "from" | "to" if integer => bounded(1, i64::MAX as u64),
        // A time, or empty for none.
        "from" | "to" => json!({
            "type": "string", "anyOf": [{ "format": "date-time" }, { "maxLength": 0 }],
        }),
        _ => return None,
    })
}

/// The constraints of a request property, by schema and property name.
fn property_schema(schema: &str, property: &str) -> Option<Value> {
    let formats = ["text", "properties", "yaml", "json", "toml", "xml", "html"];
    let md5 = json!({ "type": "string", "pattern": "^([0-9a-f]{32})?$" });
    Some(match (schema, property) {
        ("CreateNamespace", "name") | ("CloneRequest", "from") => name_schema(128, false),
        ("AddWebhookRequest", "namespace") => name_schema(128, false),
        ("CreateNamespace" | "UpdateNamespace", "display_name" | "description") => {
            json!({ "type": "string", "maxLength": 2048 })
        }
        ("GrantRequest", "group") => name_schema(128, true),
        ("GrantRequest", "data_id") => name_schema(256, true),
        ("CloneRequest", "to_group") => {
            json!({ "type": "string", "maxLength": 128, "pattern": format!("^[{NAME}-]*$") })
        }
        ("CloneRequest", "policy") => one_of(&["abort", "skip", "overwrite"]),
        ("AddWebhookRequest", "group") => optional_pattern(128),
        ("AddWebhookRequest", "data_id") => optional_pattern(256),
        ("AddWebhookRequest", "url") => json!({
            "type": "string", "format": "uri", "maxLength": 2048, "pattern": "^https?://[^/?#]+",
        }),
        ("AddWebhookRequest", "secret") => {
            json!({ "type": "string", "minLength": 16, "maxLength": 256 })
        }
        ("AddWebhookRequest", "events") => {
            json!({ "type": "array", "items": one_of(&crate::webhooks::EVENTS) })
        }
        ("CreateAccessKey", "namespaces") => {
            json!({ "type": "array", "items": name_schema(128, false) })
        }
        ("CreateToken", "name") => json!({
            "type": "string", "minLength": 1, "maxLength": 64 - crate::access::TOKEN_PREFIX.len(),
            "pattern": format!("^[{NAME}-]+$").replace(':', ""),
        }),
        ("CreateToken", "scopes") => json!({
            "type": "array", "minItems": 1, "items": { "$ref": "#/components/schemas/TokenScope" },
        }),
        ("TokenScope", "namespace") | ("GrantRequest", "namespace") => name_schema(128, true),
        ("TokenScope", "level") => one_of(&["read", "read-secret", "write"]),
        ("GrantRequest", "level") => {
            one_of(&["none", "read", "read-secret", "write", "approve", "admin"])
        }
        ("GrantRequest", "user" | "role") | ("CreateUser", "username") => name_schema(64, false),
        ("CreateUser", "role") | ("SetRole", "role") => one_of(&["admin", "user"]),
        ("CreateUser" | "SetPassword", "password") => {
            json!({ "type": "string", "minLength": 8, "maxLength": 256 })
        }
        ("PublishRequest" | "GrayRequest", "format") => one_of(&formats),
        ("PublishRequest", "tags") => json!({
            "type": "array", "maxItems": 32, "items": name_schema(64, false),
        }),
        ("PublishRequest", "description") => json!({ "type": "string", "maxLength": 2048 }),
        ("PublishRequest" | "RollbackRequest", "cas_md5") => md5,
        ("GrayRequest", "ips") => json!({
            "type": "array", "items": { "type": "string", "anyOf": [{ "format": "ipv4" }, { "format": "ipv6" }] },
        }),
        ("GrayRequest", "labels") => json!({
            "type": "array", "items": { "type": "string", "pattern": "^[^=]+=.*$" },
        }),
        // JSON Schema's `true` and `false` are schemas too.
        ("SetSchemaRequest" | "SchemaView" | "SchemaVersionView", "schema") => {
            json!({ "type": ["object", "boolean"] })
        }
        (
            "UpdateNamespace",
            "max_configs"
            | "max_config_bytes"
            | "max_total_bytes"
            | "history_max_revisions"
            | "history_max_days",
        ) => json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX }),
        ("SetSchemaRequest", "expect_version") => bounded(0, i64::MAX as u64),
        ("UpdateNamespace", "apollo_anonymous_apps") => json!({
            "type": "array", "maxItems": 64,
            "items": { "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_*-][A-Za-z0-9_.*-]*$" },
        }),
        _ => return None,
    })
}

/// Merges `rule` into a property's declared schema, keeping its description and
/// whether it may be null.
fn constrain(declared: &mut Value, mut rule: Value) {
    let nullable = declared["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|v| v == "null"));
    if nullable {
        match rule.get("type").cloned() {
            Some(Value::Array(mut types)) => {
                types.push(json!("null"));
                rule["type"] = Value::Array(types);
            }
            Some(t) => rule["type"] = json!([t, "null"]),
            None => {}
        }
    }
    if let (Some(declared), Some(rule)) = (declared.as_object_mut(), rule.as_object()) {
        for (k, v) in rule {
            declared.insert(k.clone(), v.clone());
        }
    }
}

/// Why an operation may answer `status`, for the document.
fn described(status: &str) -> &'static str {
    match status {
        "400" => "malformed_request or invalid_argument (and the operation's own codes): the request breaks a rule the message names",
        "408" => "body_too_slow: the body did not arrive within the node's body_read_timeout_ms",
        "401" => "missing_token, invalid_token or token_expired: log in again",
        "403" => "forbidden: the caller's grants do not allow it (the message says what is missing)",
        "404" => "not found: the message names what (namespace_not_found, config_not_found, …)",
        "413" => "the request body is over the node's limit",
        "415" => "malformed_request: the body must be sent as application/json",
        "429" => "too_many_attempts: too many failed logins; wait the seconds the message gives",
        "503" => "database_unavailable: writes are refused until the database answers again",
        _ => "error",
    }
}

fn error_response(status: &str) -> Value {
    json!({
        "description": described(status),
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
    })
}

/// Completes the generated document: see the module's documentation.
pub fn complete(doc: &mut Value) {
    let mut request_schemas = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if let Some(op) = op.as_object_mut() {
                    complete_operation(path, method, op, &mut request_schemas);
                }
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        if let Some(code) = schemas
            .get_mut("ErrorBody")
            .and_then(|e| e.pointer_mut("/properties/code"))
        {
            code["enum"] = json!(crate::api::error::CODES);
            code["description"] =
                json!("What went wrong, for programs; `message` says it for people.");
        }
        // Request bodies and what they hold.
        request_schemas.push("TokenScope".to_owned());
        for (name, schema) in schemas.iter_mut() {
            let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (property, declared) in properties.iter_mut() {
                if let Some(rule) = property_schema(name, property) {
                    constrain(declared, rule);
                }
            }
        }
        for name in request_schemas {
            if let Some(schema) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
                // One policy for the whole API: a property the server does not know is
                // refused (a misspelt field is a mistake to say, not to ignore).
                schema.insert("additionalProperties".into(), Value::Bool(false));
            }
        }
    }
}

fn complete_operation(
    path: &str,
    method: &str,
    op: &mut Map<String, Value>,
    request_schemas: &mut Vec<String>,
) {
    let open = path == "/api/v1/auth/login";
    if open {
        op.insert("security".into(), json!([]));
    }
    let mut has_parameters = false;
    if let Some(parameters) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in parameters.iter_mut() {
            has_parameters = true;
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            let location = p["in"].as_str().unwrap_or_default().to_owned();
            if let Some(schema) = parameter_schema(path, &name, &location, &p["schema"]) {
                p["schema"] = schema;
            }
        }
    }
    // A config's raw content comes as its format's media type (JSON is also how
    // `view=json` answers, with the config's metadata).
    if method == "get" && path == "/api/v1/configs/{namespace}/{group}/{data_id}" {
        if let Some(ok) = op.get_mut("responses").and_then(|r| r.get_mut("200")) {
            let mut content = Map::new();
            for format in cairn_core::Format::ALL {
                let media = format.content_type().split(';').next().unwrap_or_default();
                content.insert(media.to_owned(), json!({ "schema": { "type": "string" } }));
            }
            content.insert("application/json".to_owned(), json!({ "schema": {} }));
            ok["content"] = Value::Object(content);
        }
    }
    // A body its operation says is optional is not required.
    if let Some(body) = op.get_mut("requestBody") {
        if body["description"] == "optional" {
            body["required"] = Value::Bool(false);
        }
    }
    let body = op.get("requestBody").cloned();
    let json_body = body
        .as_ref()
        .and_then(|b| b.pointer("/content/application~1json"))
        .is_some();
    if let Some(reference) = body
        .as_ref()
        .and_then(|b| b.pointer("/content/application~1json/schema/$ref"))
        .and_then(Value::as_str)
    {
        if let Some(name) = reference.strip_prefix("#/components/schemas/") {
            request_schemas.push(name.to_owned());
        }
    }
    let mut statuses = vec!["503"];
    if has_parameters || body.is_some() {
        statuses.push("400");
    }
    if open {
        statuses.push("429");
    } else {
        statuses.extend(["401", "403"]);
    }
    // A path's names, or a namespace a query names, may not exist.
    let names_namespace = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "namespace"));
    if path.contains('{') || names_namespace {
        statuses.push("404");
    }
    if body.is_some() {
        statuses.extend(["408", "413"]);
    }
    if json_body {
        statuses.push("415");
    }
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    for status in statuses {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(status));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The `(method, path)` of every native API route registered in `source`: each
    /// `.route(PATH, get(…).post(…))`, the path a literal or a `long_poll_paths` name.
    fn routes_in(source: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's arguments, up to its closing parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let call = &rest[..end];
            let Some((path, methods)) = call.split_once(',') else {
                continue;
            };
            let path = path.trim();
            let path = match path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                Some(literal) => literal.to_owned(),
                None if path.ends_with("long_poll_paths::WATCH") => {
                    crate::api::long_poll_paths::WATCH.to_owned()
                }
                None => continue,
            };
            if !path.starts_with("/api/v1") {
                continue;
            }
            // The method routers at the top level of the second argument.
            let mut depth = 0;
            let mut word = String::new();
            for c in methods.chars() {
                match c {
                    '(' => {
                        if depth == 0 {
                            let method = word.trim_start_matches('.').trim();
                            if ["get", "post", "put", "delete", "patch"].contains(&method) {
                                found.push((method.to_owned(), path.clone()));
                            }
                        }
                        depth += 1;
                        word.clear();
                    }
                    ')' => depth -= 1,
                    c if depth == 0 && (c.is_alphanumeric() || c == '_') => word.push(c),
                    _ if depth == 0 => word.clear(),
                    _ => {}
                }
            }
        }
        found
    }

    #[test]
    fn the_document_lists_exactly_the_routes_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
        let mut served = BTreeSet::new();
        let mut files = vec![std::path::PathBuf::from(dir)];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "rs") {
                served.extend(routes_in(&std::fs::read_to_string(&path).unwrap()));
            }
        }
        let doc = crate::api::native::document();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        assert!(served.len() > 50, "the routes were found: {served:?}");
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "served but not documented: {undocumented:?}; documented but not served: {unserved:?}"
        );
    }

    #[test]
    fn every_operation_says_how_it_fails() {
        let doc = crate::api::native::document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                let open = op["security"] == serde_json::json!([]);
                for status in ["503"].into_iter().chain((!open).then_some("401")) {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} does not list {status}"
                    );
                }
                for (status, answer) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert_eq!(
                            answer.pointer("/content/application~1json/schema/$ref"),
                            Some(&serde_json::json!("#/components/schemas/ErrorBody")),
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }
}
