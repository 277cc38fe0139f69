//! Unified diffs between two versions of a config's content.

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

#[cfg(test)]
mod tests {
    use super::*;

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
