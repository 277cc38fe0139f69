//! JSON Schemas attached to configs: compiled once per version, mirrored from the
//! database on every node, and the check every write of a config's content passes.
//!
//! Every schema whose target matches a config applies to it (a schema attached to one
//! config does not lift a namespace-wide one). JSON, YAML (each document), TOML and
//! properties contents are checked; a config stored as text is checked as the format
//! its data id's extension names (`app.yaml`), and otherwise has no structure to check.

use std::sync::Arc;

use cairn_core::pattern::Wildcard;
use cairn_core::{ConfigKey, Format, Namespace};
use cairn_store::{SchemaRecord, SchemaTarget};
use dashmap::DashMap;
use serde_json::Value;

/// The largest schema document accepted.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// Problems listed in one refusal; the rest are counted.
const PROBLEMS_LISTED: usize = 20;

/// A schema as the node holds it: the record and its compiled validator.
pub struct Attached {
    pub record: SchemaRecord,
    group: Wildcard,
    data_id: Wildcard,
    validator: jsonschema::Validator,
}

impl Attached {
    pub fn new(record: SchemaRecord) -> Result<Self, String> {
        let validator = compile(&record.body)?;
        Ok(Attached {
            group: Wildcard::new(&record.target.group),
            data_id: Wildcard::new(&record.target.data_id),
            record,
            validator,
        })
    }

    pub fn matches(&self, key: &ConfigKey) -> bool {
        key.namespace == self.record.target.namespace
            && self.group.matches(key.group.as_str())
            && self.data_id.matches(key.data_id.as_str())
    }

    /// What in `documents` breaks this schema, one line per failing location:
    /// `/server/port: 70000 is greater than the maximum of 65535`. With `redact`, the
    /// values themselves are left out (a sensitive config's content never appears in
    /// an error).
    pub fn problems(&self, documents: &[Value], redact: bool) -> Vec<String> {
        let mut out = Vec::new();
        for (n, document) in documents.iter().enumerate() {
            let prefix = if documents.len() > 1 {
                format!("document {}: ", n + 1)
            } else {
                String::new()
            };
            for error in self.validator.iter_errors(document) {
                let at = error.instance_path().as_str().to_owned();
                let at = if at.is_empty() {
                    "(root)".to_owned()
                } else {
                    at
                };
                let what = if redact {
                    error.masked().to_string()
                } else {
                    error.to_string()
                };
                out.push(format!("{prefix}{at}: {what}"));
            }
        }
        out
    }
}

/// A schema document checked and compiled as JSON Schema draft 2020-12.
pub fn compile(body: &str) -> Result<jsonschema::Validator, String> {
    if body.len() > MAX_SCHEMA_BYTES {
        return Err(format!(
            "the schema is {} bytes; the limit is {MAX_SCHEMA_BYTES}",
            body.len()
        ));
    }
    let schema: Value =
        serde_json::from_str(body).map_err(|e| format!("the schema is not JSON: {e}"))?;
    if !matches!(schema, Value::Object(_) | Value::Bool(_)) {
        return Err("a JSON Schema is an object (or true / false)".to_owned());
    }
    if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
        let at = e.instance_path().as_str().to_owned();
        return Err(format!(
            "not a valid JSON Schema (draft 2020-12): {}{e}",
            if at.is_empty() {
                String::new()
            } else {
                format!("{at}: ")
            }
        ));
    }
    jsonschema::draft202012::new(&schema).map_err(|e| format!("the schema cannot be used: {e}"))
}

/// Why a content was refused: the schemas it breaks and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} does not match {}: {}", .schemas.join(", "), listed(.problems))]
pub struct Violation {
    pub key: ConfigKey,
    /// The schemas broken, as `ns/group/data_id (version N)`.
    pub schemas: Vec<String>,
    pub problems: Vec<String>,
}

fn listed(problems: &[String]) -> String {
    let mut text = problems
        .iter()
        .take(PROBLEMS_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > PROBLEMS_LISTED {
        text.push_str(&format!("; and {} more", problems.len() - PROBLEMS_LISTED));
    }
    text
}

/// Every namespace's schemas, as this node last read them.
#[derive(Default)]
pub struct Schemas {
    by_namespace: DashMap<Namespace, Vec<Arc<Attached>>>,
    /// Counts this node's own changes, so that a snapshot read before one of them is
    /// not applied over it.
    local_changes: std::sync::atomic::AtomicU64,
}

impl Schemas {
    /// The count of local changes, read before a snapshot for [`Schemas::refresh_since`].
    pub fn generation(&self) -> u64 {
        self.local_changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// [`Schemas::refresh`] with a snapshot read after `generation` was taken, unless a
    /// local change came since (the next heartbeat's snapshot will hold it).
    pub fn refresh_since(&self, records: Vec<SchemaRecord>, generation: u64) {
        if self.generation() == generation {
            self.refresh(records);
        }
    }

    /// Takes `records` as the whole set. A version compiled before is kept, not
    /// compiled again; one that does not compile (stored by a node of another version)
    /// is left out with a warning rather than blocking every write.
    pub fn refresh(&self, records: Vec<SchemaRecord>) {
        let mut fresh: std::collections::HashMap<Namespace, Vec<Arc<Attached>>> =
            std::collections::HashMap::new();
        for record in records {
            let known = self.get(&record.target).filter(|a| a.record == record);
            let attached = match known {
                Some(a) => a,
                None => match Attached::new(record.clone()) {
                    Ok(a) => Arc::new(a),
                    Err(e) => {
                        tracing::warn!(target = %record.target, error = %e, "a stored schema does not compile; it is not applied");
                        continue;
                    }
                },
            };
            fresh
                .entry(record.target.namespace.clone())
                .or_default()
                .push(attached);
        }
        self.by_namespace.retain(|ns, _| fresh.contains_key(ns));
        for (ns, list) in fresh {
            self.by_namespace.insert(ns, list);
        }
    }

    /// Puts one schema in place (or replaces it) at once on this node.
    pub fn put(&self, attached: Arc<Attached>) {
        self.local_changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let ns = attached.record.target.namespace.clone();
        let mut list = self.by_namespace.entry(ns).or_default();
        list.retain(|a| a.record.target != attached.record.target);
        list.push(attached);
    }

    /// Takes one schema away at once on this node.
    pub fn remove(&self, target: &SchemaTarget) {
        self.local_changes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(mut list) = self.by_namespace.get_mut(&target.namespace) {
            list.retain(|a| &a.record.target != target);
        }
    }

    pub fn get(&self, target: &SchemaTarget) -> Option<Arc<Attached>> {
        self.by_namespace
            .get(&target.namespace)?
            .iter()
            .find(|a| &a.record.target == target)
            .cloned()
    }

    /// A namespace's schemas (every namespace's with `None`), ordered by target.
    pub fn list(&self, namespace: Option<&Namespace>) -> Vec<SchemaRecord> {
        let mut out: Vec<SchemaRecord> = self
            .by_namespace
            .iter()
            .filter(|e| namespace.is_none_or(|ns| e.key() == ns))
            .flat_map(|e| {
                e.value()
                    .iter()
                    .map(|a| a.record.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.target.namespace, &a.target.group, &a.target.data_id).cmp(&(
                &b.target.namespace,
                &b.target.group,
                &b.target.data_id,
            ))
        });
        out
    }

    /// The schemas that apply to `key`.
    pub fn matching(&self, key: &ConfigKey) -> Vec<Arc<Attached>> {
        match self.by_namespace.get(&key.namespace) {
            Some(list) => list.iter().filter(|a| a.matches(key)).cloned().collect(),
            None => Vec::new(),
        }
    }

    /// Checks `content` (in `format`) of `key` against every schema that applies.
    pub fn check(
        &self,
        key: &ConfigKey,
        format: Format,
        content: &str,
        redact: bool,
    ) -> Result<(), Violation> {
        let schemas = self.matching(key);
        if schemas.is_empty() {
            return Ok(());
        }
        check_against(&schemas, key, format, content, redact)
    }
}

/// Checks `content` against `schemas` (all of which apply to `key`).
pub fn check_against(
    schemas: &[Arc<Attached>],
    key: &ConfigKey,
    format: Format,
    content: &str,
    redact: bool,
) -> Result<(), Violation> {
    let named = |a: &Attached| format!("schema {} (version {})", a.record.target, a.record.version);
    // Nacos clients publish without a type more often than not, which stores text; the
    // data id's extension then says what the content is, so `app.yaml` is still checked.
    let format = match format {
        Format::Text | Format::Xml | Format::Html => {
            Format::from_file_name(key.data_id.as_str()).unwrap_or(format)
        }
        structured => structured,
    };
    let documents = match cairn_core::structured::documents(format, content) {
        None => return Ok(()),
        Some(Ok(documents)) => documents,
        Some(Err(why)) => {
            let why = if redact {
                format!("it does not parse as {format}")
            } else {
                format!("it does not parse as {format}: {why}")
            };
            return Err(Violation {
                key: key.clone(),
                schemas: schemas.iter().map(|a| named(a)).collect(),
                problems: vec![format!("(root): {why}")],
            });
        }
    };
    let mut broken = Vec::new();
    let mut problems = Vec::new();
    for schema in schemas {
        let found = schema.problems(&documents, redact);
        if !found.is_empty() {
            broken.push(named(schema));
            problems.extend(found);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Violation {
            key: key.clone(),
            schemas: broken,
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(group: &str, data_id: &str, body: &str) -> SchemaRecord {
        SchemaRecord {
            target: SchemaTarget {
                namespace: Namespace::parse("public").unwrap(),
                group: group.into(),
                data_id: data_id.into(),
            },
            body: body.into(),
            version: 1,
            created_by: "alice".into(),
            created_at: 0,
            updated_by: "alice".into(),
            updated_at: 0,
        }
    }

    const PORT: &str = r#"{"type":"object","properties":{"server":{"type":"object",
        "properties":{"port":{"type":"integer","maximum":65535}}}},"required":["server"]}"#;

    #[test]
    fn a_refusal_names_each_location_and_rule() {
        let schemas = Schemas::default();
        schemas.refresh(vec![record("*", "*.yaml", PORT)]);
        let key = ConfigKey::parse("public", "DEFAULT_GROUP", "app.yaml").unwrap();
        let bad = schemas.check(&key, Format::Yaml, "server:\n  port: 70000\n", false);
        let bad = bad.unwrap_err();
        assert_eq!(
            bad.problems,
            ["/server/port: 70000 is greater than the maximum of 65535"]
        );
        assert!(
            bad.to_string()
                .contains("schema public/*/*.yaml (version 1)"),
            "{bad}"
        );
        assert!(schemas
            .check(&key, Format::Yaml, "server:\n  port: 80\n", false)
            .is_ok());
        let missing = schemas.check(&key, Format::Yaml, "{}", false).unwrap_err();
        assert_eq!(
            missing.problems,
            [r#"(root): "server" is a required property"#]
        );
        // Another data id is not concerned; a text config is checked as its extension.
        let other = ConfigKey::parse("public", "DEFAULT_GROUP", "app.json").unwrap();
        assert!(schemas.check(&other, Format::Json, "[]", false).is_ok());
        let text = "server:\n  port: 70000\n";
        assert!(schemas.check(&key, Format::Text, text, false).is_err());
        schemas.refresh(vec![record("*", "*", PORT)]);
        let notes = ConfigKey::parse("public", "DEFAULT_GROUP", "notes").unwrap();
        assert!(schemas
            .check(&notes, Format::Text, "port: 70000", false)
            .is_ok());
    }

    #[test]
    fn a_sensitive_content_never_appears_in_a_refusal() {
        let schemas = Schemas::default();
        let body = r#"{"properties":{"password":{"type":"integer"}}}"#;
        schemas.refresh(vec![record("*", "*", body)]);
        let key = ConfigKey::parse("public", "g", "db.yaml").unwrap();
        let content = "password: hunter2-secret\n";
        let plain = schemas
            .check(&key, Format::Yaml, content, false)
            .unwrap_err();
        assert!(plain.to_string().contains("hunter2-secret"), "{plain}");
        let redacted = schemas
            .check(&key, Format::Yaml, content, true)
            .unwrap_err();
        assert!(!redacted.to_string().contains("hunter2"), "{redacted}");
        assert!(redacted.to_string().contains("/password"), "{redacted}");
        let unparsable = schemas
            .check(&key, Format::Yaml, "a: [hunter2", true)
            .unwrap_err();
        assert!(!unparsable.to_string().contains("hunter2"), "{unparsable}");
    }

    #[test]
    fn every_matching_schema_applies_and_bad_schemas_are_refused() {
        let schemas = Schemas::default();
        schemas.refresh(vec![
            record("*", "*", r#"{"required":["a"]}"#),
            record("g", "x.json", r#"{"required":["b"]}"#),
        ]);
        let key = ConfigKey::parse("public", "g", "x.json").unwrap();
        let both = schemas.check(&key, Format::Json, "{}", false).unwrap_err();
        assert_eq!(both.schemas.len(), 2, "{both}");
        assert!(compile("{").unwrap_err().contains("not JSON"));
        assert!(compile("[]").unwrap_err().contains("object"));
        let wrong = compile(r#"{"type":"integr"}"#).unwrap_err();
        assert!(wrong.contains("not a valid JSON Schema"), "{wrong}");
        // Remote references are never fetched.
        let remote = compile(r#"{"$ref":"http://169.254.169.254/latest"}"#);
        assert!(remote.is_err(), "{remote:?}");
    }
}
