//! Build script: records the git commit the binary is built from as
//! `COREKV_GIT_COMMIT`, for `corekv --version`, the server's start line and
//! benchmark reports. Builds without git or outside a checkout (a source
//! tarball, `cargo install` from a registry) say `unknown`; the environment
//! variable `COREKV_GIT_COMMIT`, when set, wins (for packagers).
//!
//! It also compiles `src/store/float.c`, INCRBYFLOAT's `long double`
//! arithmetic (Redis's digits depend on the C type, which Rust lacks).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=COREKV_GIT_COMMIT");
    let commit = std::env::var("COREKV_GIT_COMMIT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the file of
    // the branch it points to (a commit); packed-refs for refs packed away.
    // Only files that exist: cargo reruns a script whose watched file is
    // missing on every build.
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(refname) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&["rev-parse", "--git-path", &refname]));
    }
    watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watch.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-env=COREKV_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=src/store/float.c");
    cc::Build::new()
        .file("src/store/float.c")
        .warnings(true)
        .compile("corekv_float");
}
