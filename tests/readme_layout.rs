//! README's layout section ("How it works") names every source file, so a
//! reader can find what a file owns without opening it, and a new file
//! cannot be added without saying what it is for.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The first code block after `## How it works`.
fn layout(readme: &str) -> &str {
    let section = &readme[readme.find("## How it works").expect("section")..];
    let start = section.find("```\n").expect("code block") + 4;
    let len = section[start..].find("```").expect("block end");
    &section[start..start + len]
}

#[test]
fn layout_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = layout(&readme);
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    assert!(files.len() > 20, "found {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_str().unwrap();
            // `mod.rs` and `tests.rs` are named beside their directory.
            let parent = f.parent().unwrap().file_name().unwrap().to_str().unwrap();
            let words = || block.split(|c: char| !(c.is_alphanumeric() || "._-/".contains(c)));
            let named = |n: &str| words().any(|w| w == n || w.ends_with(&format!("/{n}")));
            let dir = format!("{parent}/");
            let dir_named =
                || words().any(|w| w.starts_with(&dir) || w.contains(&format!("/{dir}")));
            match name {
                "mod.rs" | "tests.rs" | "main.rs" => !(named(name) && dir_named()),
                _ => !named(name),
            }
        })
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's layout section does not name: {missing:?}"
    );
}
