//! Repository hygiene that review would otherwise have to catch: every Rust module
//! opens with a `//!` line saying what it is for, and no test is skipped with an ignore
//! attribute.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

fn workspace_files() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&crates, &mut files);
    assert!(files.len() > 10, "found the workspace's sources");
    files
}

#[test]
fn every_module_says_what_it_is_for() {
    let missing: Vec<_> = workspace_files()
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            !first.starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a //! line: {missing:?}"
    );
}

#[test]
fn no_test_is_ignored() {
    let marker = ["#[", "ignore"].concat();
    let ignored: Vec<_> = workspace_files()
        .into_iter()
        .filter(|path| std::fs::read_to_string(path).unwrap().contains(&marker))
        .collect();
    assert!(ignored.is_empty(), "ignored tests in {ignored:?}");
}

/// The README's settings table, as the settings table in the server declares it.
fn settings_table() -> String {
    let code = |text: &str| {
        if text.contains(' ') || text.contains('`') {
            text.to_owned()
        } else {
            format!("`{text}`")
        }
    };
    let mut table = String::from(
        "| TOML key | environment / flag | default | meaning |\n| --- | --- | --- | --- |\n",
    );
    for s in cairn_server::settings::SETTINGS {
        let set_by = if s.flag {
            format!("`{}` / `--{}`", s.env, s.flag_name())
        } else {
            format!("`{}` (no flag)", s.env)
        };
        table.push_str(&format!(
            "| `{}` | {set_by} | {} | {} |\n",
            s.key,
            code(&(s.default)()),
            s.doc.trim()
        ));
    }
    table
}

#[test]
fn the_readme_lists_every_setting_as_declared() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(readme).unwrap();
    let expected = settings_table();
    assert!(
        readme.contains(&expected),
        "README.md's settings table differs from the declared settings; it should read:\n\n{expected}"
    );
}
