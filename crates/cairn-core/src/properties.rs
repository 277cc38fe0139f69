//! Java `.properties` content as key/value pairs: reading it (escapes, continuations,
//! `=`/`:`/space separators, as `java.util.Properties` does) and writing it back as
//! `Properties.store` writes it, which is what Apollo clients receive.

use std::collections::BTreeMap;

/// The pairs of a properties content, sorted by key; a later duplicate key wins. The
/// content is UTF-8 (Cairn's contents are text), not Java's historical Latin-1.
pub fn parse(content: &str) -> Result<BTreeMap<String, String>, java_properties::PropertiesError> {
    let mut pairs = BTreeMap::new();
    java_properties::PropertiesIter::new_with_encoding(content.as_bytes(), encoding_rs::UTF_8)
        .read_into(|k, v| {
            pairs.insert(k, v);
        })?;
    Ok(pairs)
}

/// Whether `content` reads as properties, as [`parse`] would tell. The only thing a
/// parse of a text refuses is a `\u` escape, so a content without a backslash before a
/// `u` is valid without being parsed: a publish of a large file skips the line-by-line
/// reading that dominates its cost.
pub fn is_valid(content: &str) -> Result<(), java_properties::PropertiesError> {
    if !content.contains("\\u") {
        return Ok(());
    }
    parse(content).map(drop)
}

/// The column (1-based, in characters) of what a parse error on `line` (1-based) is
/// about: the first `\u` escape there without four hex digits after it, the only
/// thing `java.util.Properties` refuses; else the line's start.
pub fn error_column(content: &str, line: usize) -> usize {
    let Some(text) = content.lines().nth(line.saturating_sub(1)) else {
        return 1;
    };
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            if chars.get(i + 1) == Some(&'u')
                && !(2..6).all(|k| chars.get(i + k).is_some_and(char::is_ascii_hexdigit))
            {
                return i + 1;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    1
}

/// Escapes as `Properties.store` does: `\`, tab, newline, carriage return, form feed,
/// `=`, `:`, `#` and `!` everywhere; spaces everywhere in keys but only a leading one in
/// values. Other characters, non-ASCII included, are written as they are.
fn escape(text: &str, is_key: bool, out: &mut String) {
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            c => out.push(c),
        }
    }
}

/// Properties text of `pairs`, one `key=value` line each, in key order.
pub fn to_text<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        escape(key, true, &mut out);
        out.push('=');
        escape(value, false, &mut out);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_java_rules() {
        let pairs = parse("# comment\na=1\nb : two\nc three\nlong=x\\\n   y\nu=\\u00e9\na=again\n")
            .unwrap();
        assert_eq!(pairs["a"], "again");
        assert_eq!(pairs["b"], "two");
        assert_eq!(pairs["c"], "three");
        assert_eq!(pairs["long"], "xy");
        assert_eq!(pairs["u"], "é");
    }

    #[test]
    fn writes_like_properties_store() {
        let mut pairs = BTreeMap::new();
        pairs.insert(
            "key with space".to_owned(),
            " lead and = : # !\ttab".to_owned(),
        );
        pairs.insert("é".to_owned(), "ünïcode".to_owned());
        assert_eq!(
            to_text(&pairs),
            "key\\ with\\ space=\\ lead and \\= \\: \\# \\!\\ttab\né=ünïcode\n"
        );
    }

    #[test]
    fn a_bad_escape_is_refused_without_or_with_other_lines() {
        for bad in ["a=\\u00", "a=\\uZZZZ", "x=1\ny=\\uD800\n", "a=\\u"] {
            assert!(is_valid(bad).is_err(), "{bad:?}");
        }
        for good in ["a=1\nb=\\u00e9\n", "plain text, no escapes", "a=\\\\u", ""] {
            assert!(is_valid(good).is_ok(), "{good:?}");
        }
    }

    proptest! {
        #[test]
        fn the_quick_check_agrees_with_the_parse(text in "[a-z=:#!\\\\u0-9DF \n\t]{0,40}") {
            prop_assert_eq!(is_valid(&text).is_ok(), parse(&text).is_ok());
        }

        #[test]
        fn what_is_written_reads_back(pairs in proptest::collection::btree_map("[a-z .=:#!\\\\é]{1,8}", "[ -~é\\t]{0,12}", 0..6)) {
            let text = to_text(&pairs);
            prop_assert_eq!(parse(&text).unwrap(), pairs);
        }
    }
}
