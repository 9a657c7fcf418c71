//! The committed fixtures are exactly what their recipes in `support::fixtures` make.

use std::path::PathBuf;

use crate::support::fixtures;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Rewrites tests/fixtures/ from the recipes: `cargo test -- --ignored regenerate_fixtures`.
#[test]
#[ignore]
fn regenerate_fixtures() {
    for f in fixtures::all() {
        std::fs::write(dir().join(f.name), &f.bytes).expect("writing a fixture");
    }
}

#[test]
fn fixtures_are_current() {
    for f in fixtures::all() {
        let path = dir().join(f.name);
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == f.bytes,
            "{} differs from its recipe: run `cargo test -- --ignored regenerate_fixtures`",
            f.name
        );
    }
}
