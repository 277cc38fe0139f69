//! `*` wildcard patterns used to search configs by group or data id.

/// A pattern where `*` matches any run of characters (including none); every other
/// character matches itself. A pattern without `*` is an exact match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Wildcard {
    parts: Vec<String>,
    exact: bool,
}

impl Wildcard {
    pub fn new(pattern: &str) -> Self {
        Self {
            parts: pattern.split('*').map(str::to_owned).collect(),
            exact: !pattern.contains('*'),
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.exact {
            return self.parts[0] == text;
        }
        let (first, rest) = self.parts.split_first().expect("split yields one part");
        let Some(mut remaining) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        let (last, middle) = rest.split_last().expect("a '*' yields two parts");
        for part in middle {
            match remaining.find(part.as_str()) {
                Some(at) => remaining = &remaining[at + part.len()..],
                None => return false,
            }
        }
        remaining.len() >= last.len() && remaining.ends_with(last.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let cases = [
            ("app.yaml", "app.yaml", true),
            ("app.yaml", "app.yml", false),
            ("*", "", true),
            ("app*", "app.yaml", true),
            ("*.yaml", "app.yaml", true),
            ("*.yaml", "app.yml", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("**", "x", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                Wildcard::new(pattern).matches(text),
                expected,
                "{pattern} ~ {text}"
            );
        }
    }

    fn reference(pattern: &[char], text: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|i| reference(rest, &text[i..])),
            Some((c, rest)) => text.first() == Some(c) && reference(rest, &text[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_a_backtracking_matcher(pattern in "[ab*]{0,8}", text in "[ab]{0,10}") {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            prop_assert_eq!(Wildcard::new(&pattern).matches(&text), reference(&p, &t));
        }
    }
}
