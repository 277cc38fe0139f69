//! Diffs between two versions of a config's content: as unified-diff text, and as
//! lines with their numbers on either side, for views that lay them out themselves.

use std::time::Duration;

/// How long the diff algorithm may search for a minimal diff. Past it the diff is still
/// correct, only coarser, so two large, very different contents cannot pin a core.
const DEADLINE: Duration = Duration::from_secs(1);

/// A unified diff (`---`/`+++` headers, `@@` hunks with three lines of context) from
/// `old` to `new`. Empty when the contents are equal.
pub fn unified(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::configure()
        .timeout(DEADLINE)
        .diff_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

/// What a line of a diff is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Same,
    Removed,
    Added,
}

/// One line of a diff, with its 1-based number in the old and the new content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: LineKind,
    pub old: Option<usize>,
    pub new: Option<usize>,
    /// The line without its line break.
    pub text: String,
}

/// The diff from `old` to `new` in groups of changed lines, each with up to `context`
/// unchanged lines around it. Empty when the contents are equal.
pub fn hunks(old: &str, new: &str, context: usize) -> Vec<Vec<Line>> {
    let diff = similar::TextDiff::configure()
        .timeout(DEADLINE)
        .diff_lines(old, new);
    diff.grouped_ops(context)
        .iter()
        .map(|group| {
            group
                .iter()
                .flat_map(|op| diff.iter_changes(op))
                .map(|change| Line {
                    kind: match change.tag() {
                        similar::ChangeTag::Equal => LineKind::Same,
                        similar::ChangeTag::Delete => LineKind::Removed,
                        similar::ChangeTag::Insert => LineKind::Added,
                    },
                    old: change.old_index().map(|i| i + 1),
                    new: change.new_index().map(|i| i + 1),
                    text: change
                        .value()
                        .trim_end_matches('\n')
                        .trim_end_matches('\r')
                        .to_owned(),
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_number_lines_on_both_sides() {
        let h = hunks("a\nb\nc\n", "a\nB\nc\nd\n", 1);
        assert_eq!(h.len(), 1);
        let kinds: Vec<_> = h[0].iter().map(|l| (l.kind, l.old, l.new)).collect();
        assert_eq!(
            kinds,
            [
                (LineKind::Same, Some(1), Some(1)),
                (LineKind::Removed, Some(2), None),
                (LineKind::Added, None, Some(2)),
                (LineKind::Same, Some(3), Some(3)),
                (LineKind::Added, None, Some(4)),
            ]
        );
        assert_eq!(h[0][2].text, "B");
        assert!(hunks("x\n", "x\n", 3).is_empty());
    }

    #[test]
    fn shows_changed_lines_with_headers() {
        let d = unified("a: 1\nb: 2\n", "a: 1\nb: 3\n", "r1", "r2");
        assert!(d.starts_with("--- r1\n+++ r2\n@@ -1,2 +1,2 @@\n"), "{d}");
        assert!(d.contains("\n-b: 2\n+b: 3\n"), "{d}");
    }

    #[test]
    fn equal_contents_give_no_diff() {
        assert_eq!(unified("x\n", "x\n", "a", "b"), "");
    }
}
