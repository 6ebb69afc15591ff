//! The documentation stands alone: no file the repository tracks points
//! outside it (the workplace's shared folder beside the checkout), every
//! relative link in a Markdown file names a file that exists, Makefile
//! comments cite no issue tracker a user cannot see, and the README's first
//! screen has what a new user needs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files tracked by git (the test needs the checkout; a tarball without
/// `.git` falls back to walking the tree without `target/`). Third-party
/// sources kept verbatim under `vendor/` are upstream's text, not the
/// project's documentation, and are left out — except the `PATCHES.md` the
/// project writes beside each of them.
fn tracked_files() -> Vec<PathBuf> {
    let vendor = repo().join("vendor");
    let ours =
        |p: &PathBuf| !p.starts_with(&vendor) || p.file_name().is_some_and(|n| n == "PATCHES.md");
    all_files().into_iter().filter(ours).collect()
}

fn all_files() -> Vec<PathBuf> {
    let root = repo();
    if let Ok(out) = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
    {
        if out.status.success() && !out.stdout.is_empty() {
            return out
                .stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
                .filter(|p| p.is_file())
                .collect();
        }
    }
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name();
            if name == "target" || name == ".git" || name == "results" || name == "logs" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

fn text(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// The sibling folder a repository must not reference (spelled in two
/// halves so that this file does not match `git grep` for it).
const OUTSIDE: &str = concat!("..", "/shared");

#[test]
fn nothing_points_outside_the_repository() {
    let mut bad = Vec::new();
    for f in tracked_files() {
        let Some(t) = text(&f) else { continue };
        for (i, line) in t.lines().enumerate() {
            if line.contains(OUTSIDE) {
                bad.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "references outside the repository:\n{}",
        bad.join("\n")
    );
}

/// `[text](target)` links in Markdown, relative targets only.
fn relative_links(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(j) = after.find(')') else { break };
            let target = &after[..j];
            rest = &after[j..];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            out.push(target.split('#').next().unwrap_or("").to_string());
        }
    }
    out
}

#[test]
fn relative_links_resolve() {
    assert_eq!(
        relative_links("see [a](docs/a.md#x), [b](https://x.y/z), [c](#top)\n```\n[d](nope)\n```"),
        vec!["docs/a.md".to_string()]
    );
    let mut bad = Vec::new();
    let mut checked = 0;
    for f in tracked_files() {
        if f.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let t = text(&f).unwrap();
        for link in relative_links(&t) {
            if link.is_empty() {
                continue;
            }
            checked += 1;
            let target = f.parent().unwrap().join(&link);
            if !target.exists() {
                bad.push(format!("{}: {link}", f.display()));
            }
        }
    }
    assert!(
        checked > 0,
        "no relative links found: the scanner is broken"
    );
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

#[test]
fn makefile_comments_cite_no_issue_numbers() {
    let mk = text(&repo().join("Makefile")).unwrap();
    let bad: Vec<&str> = mk
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .filter(|l| l.to_ascii_lowercase().contains("issue"))
        .collect();
    assert!(bad.is_empty(), "Makefile comments cite issues: {bad:?}");
}

#[test]
fn readme_first_screen_serves_both_users() {
    let readme = text(&repo().join("README.md")).unwrap();
    // The first screen: up to the first second-level heading.
    let head = &readme[..readme.find("\n## ").unwrap_or(readme.len())];
    for needle in [
        "make run",
        "make test",
        "target/release/corekv",
        "cargo install --path .",
        "redis-cli -p 6380",
        "memory only",
        "stats node=",
        "docs/seed.md",
    ] {
        assert!(
            head.contains(needle),
            "README's first screen lacks {needle:?}"
        );
    }
}
