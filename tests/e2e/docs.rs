//! The docs and the tree agree: every path that README.md and docs/*.md name is in the tree, so that a file moved
//! or split cannot leave the docs pointing at nothing; and the folder tables (the README's Layout, "Each folder's
//! job" in docs/architecture.md) name every top-level folder and every client, so that a new one gets its row.
//!
//! What counts as a path named by a doc:
//! - in `code` spans: a word that starts with a top-level folder of the repository (`kernel/src/admin/`), or that
//!   ends in a source or doc extension (`.rs`, `.md`, `.py`, `.proto`, `.sql`, `.sh`, `.toml`). One with a top-level
//!   folder must exist from the repository's root (or from the doc's folder); a shorter one (`listener.rs`,
//!   `grpc/device.rs`) must be the end of some path in the tree;
//! - in fenced code blocks (commands, the event-path picture): a word that starts with a top-level folder;
//! - Markdown link targets (`[text](docs/cluster.md)`), from the doc's folder.
//!
//! A word with one list in braces names each path of the list: `kernel/src/store/{mod,journal}.rs` names
//! `kernel/src/store/mod.rs` and `kernel/src/store/journal.rs`. Words with other characters than letters, digits,
//! `_`, `-`, `.` and `/` (globs such as `hookwire/v1/*.proto`, placeholders such as `<service>.rs`, variables) and
//! absolute paths are not paths of the tree.

use std::path::{Path, PathBuf};

/// Extensions that make a `code` span a file name even without a folder.
const FILE_EXTENSIONS: &[&str] = &[".rs", ".md", ".py", ".proto", ".sql", ".sh", ".toml"];

/// Folders that are build output or tool state, not part of the tree the docs describe.
fn is_ignored_folder(name: &str) -> bool {
    name.starts_with("target") || name == ".git" || name == "node_modules" || name == "__pycache__"
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository's root").to_path_buf()
}

/// Every file and folder below `root`, as paths relative to it with `/` separators.
fn tree(root: &Path) -> Vec<String> {
    let mut paths = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap_or_else(|error| panic!("{}: {error}", folder.display())) {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_ignored_folder(&name) {
                continue;
            }
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap();
            paths.push(
                relative.components().map(|part| part.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"),
            );
            if entry.file_type().unwrap().is_dir() {
                folders.push(path);
            }
        }
    }
    paths
}

/// A word of a doc that may name a path, with where it stands.
struct Mention {
    line: usize,
    word: String,
    in_code_block: bool,
}

/// The words of `text` that may name paths: `code` spans outside code blocks, and every word inside them.
fn mentions(text: &str) -> Vec<Mention> {
    let mut found = Vec::new();
    let mut in_code_block = false;
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
            continue;
        }
        let words: Vec<&str> = if in_code_block {
            line.split_whitespace().collect()
        } else {
            line.split('`').skip(1).step_by(2).collect()
        };
        found.extend(words.into_iter().map(|word| Mention { line: index + 1, word: word.to_owned(), in_code_block }));
    }
    found
}

/// The targets of Markdown links in `text` that are not web addresses or anchors.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for (position, _) in line.match_indices("](") {
            let rest = &line[position + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap_or_default();
            if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
                targets.push((index + 1, target.to_owned()));
            }
        }
    }
    targets
}

/// The words `word` stands for: itself, or one word per element of its one list in braces (`a/{b,c}.rs`).
fn expand_braces(word: &str) -> Vec<String> {
    let Some((before, rest)) = word.split_once('{') else { return vec![word.to_owned()] };
    let Some((list, after)) = rest.split_once('}') else { return vec![word.to_owned()] };
    list.split(',').map(|element| format!("{before}{element}{after}")).collect()
}

/// The path `word` names, if it names one (see the module's doc), without a trailing `/`.
fn named_path(word: &str, in_code_block: bool, top_folders: &[String]) -> Option<(String, bool)> {
    let word = word.trim().trim_start_matches('(').trim_end_matches([',', '.', ';', ':', ')']);
    let word = word.strip_prefix("./").unwrap_or(word);
    let is_plain = word.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if word.is_empty() || !is_plain || word.starts_with('/') || word.contains("..") {
        return None;
    }
    let has_top_folder = word.split_once('/').is_some_and(|(first, _)| top_folders.iter().any(|top| top == first));
    let is_file_name = !in_code_block && FILE_EXTENSIONS.iter().any(|extension| word.ends_with(extension));
    (has_top_folder || is_file_name).then(|| (word.trim_end_matches('/').to_owned(), has_top_folder))
}

#[test]
fn every_path_the_readme_and_the_docs_name_exists() {
    let root = repository_root();
    let paths = tree(&root);
    let top_folders: Vec<String> =
        paths.iter().filter(|path| !path.contains('/') && root.join(path).is_dir()).cloned().collect();
    let mut docs = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "md") {
            docs.push(path);
        }
    }
    docs.sort();
    assert!(docs.len() > 3, "README.md and docs/*.md: found {docs:?}");

    let mut missing = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let doc_folder = doc.parent().unwrap();
        let doc_name = doc.strip_prefix(&root).unwrap().display().to_string();
        let exists = |path: &str| root.join(path).exists() || doc_folder.join(path).exists();
        for mention in mentions(&text) {
            for word in expand_braces(&mention.word) {
                let Some((path, has_top_folder)) = named_path(&word, mention.in_code_block, &top_folders) else {
                    continue;
                };
                let ends_a_path = || paths.iter().any(|known| known == &path || known.ends_with(&format!("/{path}")));
                if !exists(&path) && (has_top_folder || !ends_a_path()) {
                    let source = if word == mention.word { String::new() } else { format!(" (in `{}`)", mention.word) };
                    missing.push(format!("{doc_name}:{}: `{word}`{source}", mention.line));
                }
            }
        }
        for (line, target) in link_targets(&text) {
            if !doc_folder.join(&target).exists() {
                missing.push(format!("{doc_name}:{line}: link to {target}"));
            }
        }
    }
    assert!(missing.is_empty(), "the docs name paths that are not in the tree:\n{}", missing.join("\n"));
}

#[test]
fn the_docs_check_sees_paths_and_passes_over_what_is_not_one() {
    let top_folders = vec!["kernel".to_owned(), "docs".to_owned()];
    let named = |word: &str, in_code_block: bool| named_path(word, in_code_block, &top_folders);
    assert_eq!(named("kernel/src/admin/", false), Some(("kernel/src/admin".to_owned(), true)));
    assert_eq!(named("(kernel/src/lib.rs),", true), Some(("kernel/src/lib.rs".to_owned(), true)));
    assert_eq!(named("listener.rs", false), Some(("listener.rs".to_owned(), false)));
    for not_a_path in ["listener.rs", "hook-sent/temp", "/pin[0]/", "hookwire/v1/*.proto", "grpc/<service>.rs", "a b"] {
        assert_eq!(named(not_a_path, true), None, "{not_a_path}");
    }
    assert_eq!(named("hook-response/", false), None);
    assert_eq!(expand_braces("kernel/src/{mod,journal}.rs"), ["kernel/src/mod.rs", "kernel/src/journal.rs"]);
    assert_eq!(expand_braces("kernel/src/lib.rs"), ["kernel/src/lib.rs"]);
    let text = "a `kernel/x.rs` b\n```\nrun kernel/y.rs now\n```\n[the cluster](cluster.md#top) [web](https://x.y/z)";
    let words: Vec<(usize, String, bool)> =
        mentions(text).into_iter().map(|mention| (mention.line, mention.word, mention.in_code_block)).collect();
    assert!(
        words.contains(&(1, "kernel/x.rs".to_owned(), false)) && words.contains(&(3, "kernel/y.rs".to_owned(), true))
    );
    assert_eq!(link_targets(text), [(5, "cluster.md".to_owned())]);
}

/// The text of the section of `text` that starts with the heading `heading`, up to the next heading of its level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no section {heading}"));
    let level = heading.split(' ').next().unwrap_or_default();
    let body = &text[start + heading.len() + 2..];
    let end = body.find(&format!("\n{level} ")).unwrap_or(body.len());
    &body[..end]
}

#[test]
fn the_layout_tables_name_every_top_level_folder_and_every_client() {
    let root = repository_root();
    let mut folders: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Hidden folders are tools' own (.git, .cargo) except the CI script's.
        let is_hidden = name.starts_with('.') && name != ".ci";
        if entry.file_type().unwrap().is_dir() && !is_hidden && !is_ignored_folder(&name) {
            folders.push(name);
        }
    }
    for entry in std::fs::read_dir(root.join("clients")).unwrap() {
        folders.push(format!("clients/{}", entry.unwrap().file_name().to_string_lossy()));
    }
    folders.sort();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let architecture = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let tables = [
        ("README.md", section(&readme, "## Layout")),
        ("docs/architecture.md", section(&architecture, "## Each folder's job")),
    ];
    for (doc, table) in tables {
        let unnamed: Vec<&String> = folders.iter().filter(|folder| !table.contains(&format!("`{folder}"))).collect();
        assert!(unnamed.is_empty(), "{doc}: the folder table does not name {unnamed:?}");
    }
}
