//! The export formats, read and written. Nacos's: a zip with one `{group}/{dataId}`
//! entry per config and its metadata beside them, either the older `.meta.yml` (app
//! names only) or the newer `.metadata.yml` (type, description, tags, app name).
//! Cairn's own: JSON lines, a header and then one config per line with everything it
//! has (format, description, tags, md5, gray release, and when asked its history). A
//! file is read whole and checked before anything is imported; every problem is
//! reported, by entry or line.

use std::collections::HashMap;
use std::io::{Read, Write};

use cairn_core::{DataId, Format, Group};
use cairn_store::Op;
use serde::{Deserialize, Serialize};

/// Most entries one zip may hold.
pub const MAX_ENTRIES: usize = 100_000;
/// Most bytes one zip may unpack to (a zip bomb stops here, not in memory).
pub const MAX_UNPACKED: u64 = 512 << 20;

/// One config of an export or an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub group: Group,
    pub data_id: DataId,
    pub content: String,
    /// `None`: from the data id's extension.
    pub format: Option<Format>,
    pub description: String,
    pub tags: Vec<String>,
    /// Marked sensitive (Cairn's format only: Nacos's marks by the `cipher-` prefix).
    pub sensitive: bool,
    /// Its gray release (Cairn's format only).
    pub gray: Option<GrayItem>,
    /// Its earlier versions, oldest first (Cairn's format, exported with history).
    pub history: Vec<PastItem>,
}

/// An earlier version of a config, as an export with history carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastItem {
    /// Its revision where it was exported: the versions' order (an import gives each
    /// a revision of its own).
    pub revision: i64,
    pub op: Op,
    /// Empty for a deletion.
    pub content: String,
    pub format: Format,
    pub md5: String,
    pub description: String,
    pub tags: Vec<String>,
    pub sensitive: bool,
    pub operator: String,
    pub source: String,
    pub comment: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A gray release as an export carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrayItem {
    pub content: String,
    /// `None`: the config's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// `key=value` labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// Why one entry of a zip cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub entry: String,
    pub why: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.entry, self.why)
    }
}

/// `.metadata.yml`'s entries, as Nacos 2.x writes them.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    metadata: Vec<MetadataItem>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataItem {
    group: String,
    data_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    desc: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    app_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    config_tags: String,
}

const META_V1: &str = ".meta.yml";
const META_V2: &str = ".metadata.yml";

/// The configs of a Nacos export zip, or every problem that stops it from being
/// imported. Directory entries are skipped (r-nacos writes them, repeated).
pub fn read_zip(bytes: &[u8]) -> Result<Vec<Item>, Vec<Problem>> {
    match read_zip_within(bytes, MAX_UNPACKED)? {
        (items, problems) if problems.is_empty() => Ok(items),
        (_, problems) => Err(problems),
    }
}

/// The configs of a Nacos export zip that can be read, and the problems of the entries
/// that cannot; an error only when the zip as a whole cannot be read (not a zip, too
/// many entries, too large unpacked).
pub fn read_zip_lenient(bytes: &[u8]) -> Result<(Vec<Item>, Vec<Problem>), Vec<Problem>> {
    read_zip_within(bytes, MAX_UNPACKED)
}

fn read_zip_within(
    bytes: &[u8],
    max_unpacked: u64,
) -> Result<(Vec<Item>, Vec<Problem>), Vec<Problem>> {
    let problem = |entry: &str, why: String| Problem {
        entry: entry.to_owned(),
        why,
    };
    let mut archive = match zip::ZipArchive::new(std::io::Cursor::new(bytes)) {
        Ok(archive) => archive,
        Err(e) => return Err(vec![problem("(zip)", format!("not a zip file: {e}"))]),
    };
    if archive.len() > MAX_ENTRIES {
        return Err(vec![problem(
            "(zip)",
            format!("{} entries; at most {MAX_ENTRIES} are read", archive.len()),
        )]);
    }
    let mut problems = Vec::new();
    let mut files: Vec<(String, String)> = Vec::new();
    let mut unpacked = 0u64;
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(problem(&format!("entry {i}"), e.to_string()));
                continue;
            }
        };
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if entry.is_dir() {
            continue;
        }
        // Read at most what is left of the budget, whatever the entry claims.
        let budget = max_unpacked - unpacked;
        let mut content = Vec::new();
        let read = (&mut entry).take(budget + 1).read_to_end(&mut content);
        if let Err(e) = read {
            problems.push(problem(&name, format!("cannot be unpacked: {e}")));
            continue;
        }
        unpacked += content.len() as u64;
        if unpacked > max_unpacked {
            return Err(vec![problem(
                "(zip)",
                format!("unpacks to more than {} MiB", max_unpacked >> 20),
            )]);
        }
        match String::from_utf8(content) {
            Ok(text) => files.push((name, text)),
            Err(_) => problems.push(problem(&name, "is not UTF-8 text".to_owned())),
        }
    }
    let mut metadata: HashMap<(String, String), MetadataItem> = HashMap::new();
    let mut configs = Vec::new();
    for (name, text) in files {
        match name.as_str() {
            META_V2 => match parse_metadata(&text) {
                Ok(items) => metadata.extend(
                    items
                        .into_iter()
                        .map(|m| ((m.group.clone(), m.data_id.clone()), m)),
                ),
                Err(why) => problems.push(problem(&name, why)),
            },
            // Only app names, which Cairn does not keep.
            META_V1 => {}
            _ => configs.push((name, text)),
        }
    }
    let mut items = Vec::with_capacity(configs.len());
    for (name, content) in configs {
        let Some((group, data_id)) = name.split_once('/') else {
            problems.push(problem(&name, "is not group/dataId".to_owned()));
            continue;
        };
        // Names are checked as Cairn checks every name, which also refuses `..`,
        // slashes and anything else that could reach outside a group.
        let (group_name, data_id_name) = (group, data_id);
        let group = match Group::parse(group_name) {
            Ok(group) => group,
            Err(e) => {
                problems.push(problem(&name, format!("group: {e}")));
                continue;
            }
        };
        let data_id = match DataId::parse(data_id_name) {
            Ok(data_id) => data_id,
            Err(e) => {
                problems.push(problem(&name, format!("data id: {e}")));
                continue;
            }
        };
        let meta = metadata.remove(&(group_name.to_owned(), data_id_name.to_owned()));
        let meta = meta.unwrap_or_default();
        let format = match meta.kind.trim() {
            "" => None,
            kind => match kind.parse::<Format>() {
                Ok(format) => Some(format),
                Err(e) => {
                    problems.push(problem(&name, format!("type: {e}")));
                    continue;
                }
            },
        };
        items.push(Item {
            group,
            data_id,
            content,
            format,
            description: meta.desc,
            tags: meta
                .config_tags
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            sensitive: false,
            gray: None,
            history: Vec::new(),
        });
    }
    Ok((items, problems))
}

/// `.metadata.yml`: Nacos writes a `metadata:` list; a bare list is taken too.
fn parse_metadata(text: &str) -> Result<Vec<MetadataItem>, String> {
    if let Ok(wrapped) = serde_yaml_ng::from_str::<Metadata>(text) {
        return Ok(wrapped.metadata);
    }
    serde_yaml_ng::from_str::<Vec<MetadataItem>>(text)
        .map_err(|e| format!("is not Nacos's export metadata: {e}"))
}

/// A Nacos export zip of `items`: `.metadata.yml` (Nacos 2.x's `exportV2`) when
/// `with_metadata`, else the configs alone, as the older export writes them when no
/// config has an app name.
pub fn write_zip(items: &[Item], with_metadata: bool) -> std::io::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for item in items {
        zip.start_file(format!("{}/{}", item.group, item.data_id), options)
            .map_err(std::io::Error::other)?;
        zip.write_all(item.content.as_bytes())?;
    }
    if with_metadata {
        let metadata = Metadata {
            metadata: items
                .iter()
                .map(|item| MetadataItem {
                    group: item.group.to_string(),
                    data_id: item.data_id.to_string(),
                    desc: item.description.clone(),
                    kind: item
                        .format
                        .map(|f| f.as_str().to_owned())
                        .unwrap_or_default(),
                    app_name: String::new(),
                    config_tags: item.tags.join(","),
                })
                .collect(),
        };
        let text = serde_yaml_ng::to_string(&metadata).map_err(std::io::Error::other)?;
        zip.start_file(META_V2, options)
            .map_err(std::io::Error::other)?;
        zip.write_all(text.as_bytes())?;
    }
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

/// The first line of Cairn's format.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    /// The format's version.
    cairn_export: u32,
    namespace: String,
    exported_at: String,
    configs: usize,
}

const CAIRN_FORMAT_VERSION: u32 = 1;

/// One config of Cairn's format.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    group: String,
    data_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    content: String,
    /// The content's md5 when exported; a line whose content does not match is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    md5: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    sensitive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gray: Option<GrayItem>,
    /// Earlier versions, oldest first; only in an export with history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history: Vec<PastLine>,
}

/// One earlier version of a config in Cairn's format.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PastLine {
    revision: i64,
    op: String,
    #[serde(default)]
    content: String,
    format: String,
    md5: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    sensitive: bool,
    #[serde(default)]
    operator: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    comment: String,
    /// Unix milliseconds.
    created_at: i64,
}

impl From<&PastItem> for PastLine {
    fn from(past: &PastItem) -> Self {
        PastLine {
            revision: past.revision,
            op: past.op.as_str().to_owned(),
            content: past.content.clone(),
            format: past.format.as_str().to_owned(),
            md5: past.md5.clone(),
            description: past.description.clone(),
            tags: past.tags.clone(),
            sensitive: past.sensitive,
            operator: past.operator.clone(),
            source: past.source.clone(),
            comment: past.comment.clone(),
            created_at: past.created_at,
        }
    }
}

impl PastLine {
    /// The version, or why it cannot be imported.
    fn parse(self) -> Result<PastItem, String> {
        let at = format!("history revision {}", self.revision);
        let op = Op::parse(&self.op).ok_or_else(|| format!("{at}: unknown op {:?}", self.op))?;
        let format = self
            .format
            .parse::<Format>()
            .map_err(|e| format!("{at}: format: {e}"))?;
        // A deletion's entry has no content to sum.
        if op != Op::Delete && self.md5 != cairn_core::md5::md5_hex(&self.content) {
            return Err(format!(
                "{at}: its content does not match its md5 {}: the file was changed or cut",
                self.md5
            ));
        }
        Ok(PastItem {
            revision: self.revision,
            op,
            content: self.content,
            format,
            md5: self.md5,
            description: self.description,
            tags: self.tags,
            sensitive: self.sensitive,
            operator: self.operator,
            source: self.source,
            comment: self.comment,
            created_at: self.created_at,
        })
    }
}

/// Whether `bytes` are Cairn's format rather than a zip.
pub fn is_cairn_format(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Cairn's format of `items`, exported from `namespace`.
pub fn write_cairn(namespace: &str, exported_at: String, items: &[Item]) -> Vec<u8> {
    let header = Header {
        cairn_export: CAIRN_FORMAT_VERSION,
        namespace: namespace.to_owned(),
        exported_at,
        configs: items.len(),
    };
    let mut out = serde_json::to_vec(&header).expect("a header serializes");
    for item in items {
        out.push(b'\n');
        let line = Line {
            group: item.group.to_string(),
            data_id: item.data_id.to_string(),
            format: item.format.map(|f| f.as_str().to_owned()),
            md5: Some(cairn_core::md5::md5_hex(&item.content)),
            content: item.content.clone(),
            description: item.description.clone(),
            tags: item.tags.clone(),
            sensitive: item.sensitive,
            gray: item.gray.clone(),
            history: item.history.iter().map(PastLine::from).collect(),
        };
        out.extend(serde_json::to_vec(&line).expect("a line serializes"));
    }
    out.push(b'\n');
    out
}

/// The configs of a file in Cairn's format that can be read, and the problems of the
/// lines that cannot; an error when the file as a whole cannot be read.
pub fn read_cairn(bytes: &[u8]) -> Result<(Vec<Item>, Vec<Problem>), Vec<Problem>> {
    let problem = |entry: String, why: String| Problem { entry, why };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(vec![problem("(file)".into(), "is not UTF-8 text".into())]);
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header: Header = match lines.next().map(|(_, l)| serde_json::from_str(l)) {
        Some(Ok(header)) => header,
        Some(Err(e)) => {
            return Err(vec![problem(
                "line 1".into(),
                format!("is not a Cairn export header: {e}"),
            )])
        }
        None => return Err(vec![problem("(file)".into(), "is empty".into())]),
    };
    if header.cairn_export != CAIRN_FORMAT_VERSION {
        return Err(vec![problem(
            "line 1".into(),
            format!(
                "format version {} is not {CAIRN_FORMAT_VERSION}, the one this node reads",
                header.cairn_export
            ),
        )]);
    }
    let mut items = Vec::new();
    let mut problems = Vec::new();
    for (index, text) in lines {
        if items.len() + problems.len() >= MAX_ENTRIES {
            return Err(vec![problem(
                "(file)".into(),
                format!("more than {MAX_ENTRIES} configs"),
            )]);
        }
        let entry = format!("line {}", index + 1);
        let line: Line = match serde_json::from_str(text) {
            Ok(line) => line,
            Err(e) => {
                problems.push(problem(entry, format!("is not a config: {e}")));
                continue;
            }
        };
        let named = format!("{entry} ({}/{})", line.group, line.data_id);
        let parsed = (|| {
            let group = Group::parse(&line.group).map_err(|e| format!("group: {e}"))?;
            let data_id = DataId::parse(&line.data_id).map_err(|e| format!("data id: {e}"))?;
            let format = line
                .format
                .as_deref()
                .map(str::parse::<Format>)
                .transpose()
                .map_err(|e| format!("format: {e}"))?;
            if let Some(md5) = &line.md5 {
                if *md5 != cairn_core::md5::md5_hex(&line.content) {
                    return Err(format!(
                        "its content does not match its md5 {md5}: the file was changed or cut"
                    ));
                }
            }
            let history = line
                .history
                .into_iter()
                .map(PastLine::parse)
                .collect::<Result<Vec<_>, _>>()?;
            if history.windows(2).any(|w| w[0].revision >= w[1].revision) {
                return Err("its history is not in the order of its revisions".to_owned());
            }
            Ok(Item {
                group,
                data_id,
                content: line.content,
                format,
                description: line.description,
                tags: line.tags,
                sensitive: line.sensitive,
                gray: line.gray,
                history,
            })
        })();
        match parsed {
            Ok(item) => items.push(item),
            Err(why) => problems.push(problem(named, why)),
        }
    }
    if header.configs != items.len() + problems.len() {
        problems.push(problem(
            "(file)".into(),
            format!(
                "the header counts {} configs, the file holds {}: it was cut short or added to",
                header.configs,
                items.len() + problems.len()
            ),
        ));
    }
    Ok((items, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(group: &str, data_id: &str, content: &str) -> Item {
        Item {
            group: Group::parse(group).unwrap(),
            data_id: DataId::parse(data_id).unwrap(),
            content: content.to_owned(),
            format: Some(Format::Yaml),
            description: "the app".to_owned(),
            tags: vec!["a".to_owned(), "b".to_owned()],
            sensitive: false,
            gray: None,
            history: Vec::new(),
        }
    }

    /// A zip of raw entries, as another tool might write it.
    fn raw_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, content) in entries {
            if name.ends_with('/') {
                zip.add_directory(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
            } else {
                zip.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                zip.write_all(content).unwrap();
            }
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn an_export_reads_back_as_it_was() {
        let items = vec![
            item("g", "a.yaml", "a: 1\n"),
            item("DEFAULT_GROUP", "b", "x"),
        ];
        let zip = write_zip(&items, true).unwrap();
        assert_eq!(read_zip(&zip).unwrap(), items);
        // Without metadata, the contents and names survive; the rest is default.
        let bare = read_zip(&write_zip(&items, false).unwrap()).unwrap();
        assert_eq!(bare[0].content, "a: 1\n");
        assert_eq!((bare[0].format, bare[0].tags.len()), (None, 0));
    }

    #[test]
    fn cairns_format_keeps_everything_and_refuses_what_changed() {
        let mut items = vec![item("g", "a.yaml", "a: 1\n"), item("g", "b", "x")];
        items[1].format = None;
        items[0].gray = Some(GrayItem {
            content: "a: 2\n".into(),
            format: None,
            ips: vec!["10.0.0.1".into()],
            labels: vec!["zone=east".into()],
        });
        let past = |revision: i64, op: Op, content: &str| PastItem {
            revision,
            op,
            content: content.into(),
            format: Format::Yaml,
            md5: cairn_core::md5::md5_hex(content),
            description: String::new(),
            tags: Vec::new(),
            sensitive: revision == 3,
            operator: "ann".into(),
            source: "10.0.0.9".into(),
            comment: format!("step {revision}"),
            created_at: 1_700_000_000_000 + revision,
        };
        items[0].history = vec![
            past(3, Op::Publish, "a: 0\n"),
            past(5, Op::Delete, ""),
            past(8, Op::Publish, "a: 0.5\n"),
        ];
        let file = write_cairn("dev", "2026-12-04T00:00:00Z".into(), &items);
        assert!(is_cairn_format(&file));
        let (read, problems) = read_cairn(&file).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(read, items);

        let text = String::from_utf8(file).unwrap();
        let tampered = text.replace("\"content\":\"x\"", "\"content\":\"y\"");
        let (read, problems) = read_cairn(tampered.as_bytes()).unwrap();
        assert_eq!(read.len(), 1);
        assert!(
            problems[0].why.contains("does not match its md5"),
            "{problems:?}"
        );
        let tampered = text.replace("\"content\":\"a: 0.5\\n\"", "\"content\":\"a: 9\\n\"");
        let (_, problems) = read_cairn(tampered.as_bytes()).unwrap();
        assert!(
            problems[0].why.contains("history revision 8"),
            "{problems:?}"
        );
        let reordered = text.replace("\"revision\":8", "\"revision\":4");
        let (_, problems) = read_cairn(reordered.as_bytes()).unwrap();
        assert!(problems[0].why.contains("not in the order"), "{problems:?}");
        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        let (_, problems) = read_cairn(cut.as_bytes()).unwrap();
        assert!(problems[0].why.contains("cut short"), "{problems:?}");
        assert!(read_cairn(b"{\"not\": 1}").is_err());
        assert!(!is_cairn_format(b"PK\x03\x04"));
    }

    #[test]
    fn nacos_1_and_r_nacos_layouts_are_read() {
        let mut zip = raw_zip(&[
            ("DEFAULT_GROUP/", b""),
            ("DEFAULT_GROUQ/", b""),
            ("DEFAULT_GROUP/app.properties", b"a=1"),
            (".meta.yml", b"DEFAULT_GROUP.app~properties.app=shop\r\n"),
        ]);
        // r-nacos repeats directory entries, which zip writers refuse to: rename the
        // second in place (names are outside the checksums).
        let (from, to) = (b"DEFAULT_GROUQ/", b"DEFAULT_GROUP/");
        for at in 0..zip.len() - from.len() {
            if &zip[at..at + from.len()] == from {
                zip[at..at + from.len()].copy_from_slice(to);
            }
        }
        let items = read_zip(&zip).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].data_id.as_str(), "app.properties");
    }

    #[test]
    fn every_bad_entry_is_named() {
        let zip = raw_zip(&[
            ("../etc/passwd", b"x"),
            ("no-group", b"x"),
            ("g/bad name!", b"x"),
            ("g/binary", &[0xff, 0xfe]),
            ("g/fine.txt", b"ok"),
        ]);
        let problems = read_zip(&zip).unwrap_err();
        let entries: Vec<&str> = problems.iter().map(|p| p.entry.as_str()).collect();
        assert_eq!(
            entries,
            ["g/binary", "../etc/passwd", "no-group", "g/bad name!"],
            "{problems:?}"
        );
        assert!(read_zip(b"not a zip").is_err());
    }

    #[test]
    fn a_zip_bomb_stops_at_the_budget() {
        // Highly compressible: a few KiB packed, more than the budget unpacked.
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("g/bomb", options).unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..9 {
            zip.write_all(&chunk).unwrap();
        }
        let bytes = zip.finish().unwrap().into_inner();
        assert!(bytes.len() < 1 << 20, "{}", bytes.len());
        let problems = read_zip_within(&bytes, 8 << 20).unwrap_err();
        assert!(
            problems[0].why.contains("unpacks to more than"),
            "{problems:?}"
        );
    }
}
