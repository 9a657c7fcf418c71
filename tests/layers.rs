//! The import rule of docs/architecture.md ("Layers and the import rule"), checked on the
//! source: a lower layer never imports a higher one, `replay` never imports `report`, and a
//! command never imports another command. Plain text checks on `src/**/*.rs`, outside
//! comments and `#[cfg(test)] mod tests` (tests may build what they need from anywhere).

use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use its own layer and those before it.
const LAYERS: &[&str] = &[
    "capture",
    "wire",
    "reassembly",
    "http1",
    "pipeline",
    "replay",
    "report",
    "cli",
    "settings",
    "commands",
];

/// Modules under `commands/` that are not commands: what the commands share.
const SHARED: &[&str] = &["mod", "outputs", "verdict", "describe"];

/// Commands allowed to run other commands, and why: `demo` is `replay` and `mirror` run on
/// its embedded capture and servers.
const RUNS_COMMANDS: &[&str] = &["demo"];

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// Every source file: its path under `src/` and its code (without comments or the tests
/// module).
fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let code: Vec<&str> = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            let name = path.strip_prefix(&src).unwrap().display().to_string();
            (name, code.join("\n"))
        })
        .collect()
}

/// The top-level module a file belongs to: `replay/engine.rs` is `replay`.
fn module(name: &str) -> &str {
    let first = name.split('/').next().unwrap_or(name);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// The names a path prefix leads to in `code`: `crate::x`, `x` and `y` of `prefix{x, y::z}`.
fn named_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let ident = |s: &'a str| {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        &s[..end]
    };
    let mut names = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(group.split(',').map(|item| ident(item.trim())));
        } else {
            names.push(ident(rest));
        }
    }
    names
}

#[test]
fn a_lower_layer_never_imports_a_higher_one() {
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    for (name, code) in sources() {
        let Some(own) = rank(module(&name)) else {
            continue; // neutral modules (output, redact, ...), lib.rs, main.rs, fuzzing
        };
        for used in named_after(&code, "crate::") {
            if rank(used).is_some_and(|r| r > own) {
                wrong.push(format!("{name} uses crate::{used}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers: {wrong:#?}");
}

#[test]
fn replay_never_imports_report() {
    let wrong: Vec<String> = sources()
        .into_iter()
        .filter(|(name, code)| module(name) == "replay" && code.contains("crate::report"))
        .map(|(name, _)| name)
        .collect();
    assert!(wrong.is_empty(), "replay files importing report: {wrong:?}");
}

#[test]
fn a_command_never_imports_another_command() {
    let sources = sources();
    let command = |name: &str| {
        let stem = name.strip_prefix("commands/")?.strip_suffix(".rs")?;
        (!SHARED.contains(&stem) && !stem.contains('/')).then_some(stem.to_string())
    };
    let commands: Vec<String> = sources.iter().filter_map(|(n, _)| command(n)).collect();
    assert!(commands.len() >= 6, "commands found: {commands:?}");
    let mut wrong = Vec::new();
    for (name, code) in &sources {
        let Some(own) = command(name) else { continue };
        if RUNS_COMMANDS.contains(&own.as_str()) {
            continue;
        }
        let mut used = named_after(code, "commands::");
        used.extend(named_after(code, "super::"));
        for other in used {
            if other != own && commands.iter().any(|c| c == other) {
                wrong.push(format!("{name} uses the {other} command"));
            }
        }
    }
    assert!(wrong.is_empty(), "commands importing commands: {wrong:#?}");
}
