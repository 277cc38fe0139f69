//! Config formats: naming them, guessing them from a file name, and validating content
//! so that a structured config that does not parse is caught before clients see it.

use std::fmt;
use std::str::FromStr;

/// The format of a config's content. Structured formats are validated on publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    #[default]
    Text,
    Properties,
    Yaml,
    Json,
    Toml,
    Xml,
    Html,
}

/// A parse error in a config's content, with the 1-based position the parser reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FormatError {
    pub format: Format,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}", self.format)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " at line {line}, column {column}")?,
            (Some(line), None) => write!(f, " at line {line}")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// The name given is not one of the supported formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}; expected one of text, properties, yaml, json, toml, xml, html")]
pub struct UnknownFormat(pub String);

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Text,
        Format::Properties,
        Format::Yaml,
        Format::Json,
        Format::Toml,
        Format::Xml,
        Format::Html,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Properties => "properties",
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Toml => "toml",
            Format::Xml => "xml",
            Format::Html => "html",
        }
    }

    /// The format a file name's extension implies, if any (`app.yml` → yaml).
    pub fn from_file_name(name: &str) -> Option<Format> {
        let (_, ext) = name.rsplit_once('.')?;
        match ext.to_ascii_lowercase().as_str() {
            "txt" | "text" => Some(Format::Text),
            "properties" => Some(Format::Properties),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            "xml" => Some(Format::Xml),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }

    /// The HTTP content type a config of this format is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "application/xml; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
            Format::Yaml => "application/yaml; charset=utf-8",
            Format::Toml => "application/toml; charset=utf-8",
            Format::Text | Format::Properties => "text/plain; charset=utf-8",
        }
    }

    /// Checks that `content` parses as this format. Text and HTML accept anything.
    pub fn validate(self, content: &str) -> Result<(), FormatError> {
        let fail = |line, column, message: String| {
            Err(FormatError {
                format: self,
                line,
                column,
                message,
            })
        };
        match self {
            Format::Text | Format::Html => Ok(()),
            Format::Json => match serde_json::from_str::<serde_json::Value>(content) {
                Ok(_) => Ok(()),
                Err(e) => fail(
                    Some(e.line()),
                    Some(e.column()),
                    strip_position(&e.to_string()),
                ),
            },
            Format::Yaml => validate_yaml(content).or_else(|e| fail(e.0, e.1, e.2)),
            Format::Toml => match content.parse::<toml::Table>() {
                Ok(_) => Ok(()),
                Err(e) => {
                    let (line, column) = match e.span() {
                        Some(span) => {
                            let (l, c) = line_column(content, span.start);
                            (Some(l), Some(c))
                        }
                        None => (None, None),
                    };
                    fail(line, column, e.message().to_owned())
                }
            },
            Format::Xml => validate_xml(content).or_else(|(offset, message)| {
                let (l, c) = line_column(content, offset);
                fail(Some(l), Some(c), message)
            }),
            Format::Properties => match crate::properties::is_valid(content) {
                Ok(()) => Ok(()),
                Err(e) => {
                    let column = e
                        .line_number()
                        .map(|line| crate::properties::error_column(content, line));
                    fail(e.line_number(), column, e.to_string())
                }
            },
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(Format::Text),
            "properties" => Ok(Format::Properties),
            "yaml" | "yml" => Ok(Format::Yaml),
            "json" => Ok(Format::Json),
            "toml" => Ok(Format::Toml),
            "xml" => Ok(Format::Xml),
            "html" | "htm" => Ok(Format::Html),
            _ => Err(UnknownFormat(s.chars().take(40).collect())),
        }
    }
}

/// serde_json appends " at line L column C" to its messages; we report those separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

type Position = (Option<usize>, Option<usize>, String);

fn validate_yaml(content: &str) -> Result<(), Position> {
    use serde::Deserialize;
    // A config may hold several YAML documents separated by `---`; each must parse.
    for document in serde_yaml_ng::Deserializer::from_str(content) {
        if let Err(e) = serde_yaml_ng::Value::deserialize(document) {
            let (line, column) = match e.location() {
                Some(loc) => (Some(loc.line()), Some(loc.column())),
                None => (None, None),
            };
            let message = e.to_string();
            let message = match message.find(" at line ") {
                Some(at) => message[..at].to_owned(),
                None => message,
            };
            return Err((line, column, message));
        }
    }
    Ok(())
}

/// Well-formedness: the tokenizer accepts it, tags balance, and there is exactly one
/// root element with nothing but whitespace, comments and declarations around it.
fn validate_xml(content: &str) -> Result<(), (usize, String)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(content);
    let mut open: Vec<String> = Vec::new();
    let mut roots = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event() {
            Err(e) => return Err((reader.error_position() as usize, e.to_string())),
            Ok(Event::Eof) => break,
            Ok(Event::Start(start)) => {
                if open.is_empty() {
                    roots += 1;
                }
                open.push(String::from_utf8_lossy(start.name().as_ref()).into_owned());
            }
            Ok(Event::Empty(_)) => {
                if open.is_empty() {
                    roots += 1;
                }
            }
            Ok(Event::End(_)) => {
                open.pop();
            }
            Ok(Event::Text(text)) if open.is_empty() => {
                if !text.iter().all(u8::is_ascii_whitespace) {
                    return Err((before, "text outside the root element".to_owned()));
                }
            }
            Ok(Event::CData(_)) if open.is_empty() => {
                return Err((before, "CDATA outside the root element".to_owned()));
            }
            Ok(_) => {}
        }
        if roots > 1 {
            return Err((before, "more than one root element".to_owned()));
        }
    }
    if let Some(name) = open.last() {
        return Err((content.len(), format!("element <{name}> is not closed")));
    }
    if roots == 0 {
        return Err((content.len(), "no root element".to_owned()));
    }
    Ok(())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(content: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(content.len());
    while !content.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &content[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(format: Format, content: &str) -> FormatError {
        format.validate(content).unwrap_err()
    }

    #[test]
    fn names_round_trip_and_aliases() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
        }
        assert_eq!("YML".parse::<Format>().unwrap(), Format::Yaml);
        assert!("ini".parse::<Format>().is_err());
        assert_eq!(Format::from_file_name("app.yml"), Some(Format::Yaml));
        assert_eq!(
            Format::from_file_name("db.properties"),
            Some(Format::Properties)
        );
        assert_eq!(Format::from_file_name("README"), None);
        assert_eq!(Format::from_file_name("x.cfg"), None);
    }

    #[test]
    fn valid_contents_pass() {
        Format::Json.validate(r#"{"a": [1, 2]}"#).unwrap();
        Format::Yaml
            .validate("a: 1\nb:\n  - x\n---\nc: 2\n")
            .unwrap();
        Format::Yaml.validate("").unwrap();
        Format::Toml.validate("[server]\nport = 8080\n").unwrap();
        Format::Xml
            .validate("<?xml version=\"1.0\"?>\n<!-- c -->\n<a x=\"1\"><b/>t</a>\n")
            .unwrap();
        Format::Properties
            .validate("a=1\nb : 2\nc 3\nlong=x\\\n  y\nu=\\u00e9\n")
            .unwrap();
        Format::Text.validate("{{{ anything").unwrap();
        Format::Html.validate("<p>unclosed").unwrap();
    }

    #[test]
    fn json_errors_have_positions() {
        let e = err(Format::Json, "{\n  \"a\": 1,\n  \"b\" 2\n}");
        assert_eq!((e.line, e.column), (Some(3), Some(7)));
        assert_eq!(
            e.to_string(),
            "invalid json at line 3, column 7: expected `:`"
        );
    }

    #[test]
    fn yaml_errors_have_positions() {
        let e = err(Format::Yaml, "a: 1\nb: [1, 2\nc: 3\n");
        assert!(e.line.is_some() && e.column.is_some(), "{e:?}");
        assert!(e.line.unwrap() >= 2, "{e:?}");
        let e = err(Format::Yaml, "a: 1\n  b: 2\n");
        assert_eq!(e.line, Some(2), "{e:?}");
    }

    #[test]
    fn toml_errors_have_positions() {
        let e = err(Format::Toml, "[a]\nx = 1\ny = \n");
        assert_eq!(e.line, Some(3), "{e:?}");
        let e = err(Format::Toml, "a = 1\na = 2\n");
        assert_eq!(e.line, Some(2), "{e:?}");
    }

    #[test]
    fn xml_errors_have_positions() {
        let e = err(Format::Xml, "<a>\n  <b></c>\n</a>");
        assert_eq!(e.line, Some(2), "{e:?}");
        let e = err(Format::Xml, "<a>\n<b>\n");
        assert!(e.message.contains("not closed"), "{e:?}");
        let e = err(Format::Xml, "<a/><b/>");
        assert!(e.message.contains("more than one root"), "{e:?}");
        let e = err(Format::Xml, "");
        assert!(e.message.contains("no root"), "{e:?}");
        let e = err(Format::Xml, "hello <a/>");
        assert!(e.message.contains("outside the root"), "{e:?}");
    }

    #[test]
    fn properties_errors_have_lines() {
        let e = err(Format::Properties, "a=1\nb=\\uZZZZ\n");
        assert_eq!(e.line, Some(2), "{e:?}");
        assert_eq!(e.column, Some(3), "{e:?}");
    }

    proptest::proptest! {
        /// Whatever a client sends, validation answers; it never panics.
        #[test]
        fn validation_never_panics(content in "(\\PC|[\\[\\]{}<>:=\"'\\\\\n -])*") {
            for format in Format::ALL {
                let _ = format.validate(&content);
            }
        }
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncé\nx", 6), (2, 3));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
