//! Reading scenario files: TOML into the raw types (errors with key path and line), one
//! file, or every file of a directory.

use std::path::{Path, PathBuf};

use super::{RawScenario, Scenario, ScenarioError};

/// Reads the TOML into the raw types; errors carry the key path and line (the project's one
/// TOML reader, [`firebreak_protocols::toml_file`]).
pub fn parse_raw(text: &str, origin: &str) -> Result<RawScenario, ScenarioError> {
    firebreak_protocols::toml_file::parse(text).map_err(|e| ScenarioError {
        origin: origin.to_string(),
        line: e.line,
        path: e.path,
        problem: e.problem,
    })
}

/// A file of a directory, read and checked (or not).
pub type Loaded = (PathBuf, Result<Scenario, ScenarioError>);

/// Every `*.toml` file in `dir`, sorted by name, each read and checked on its own.
pub fn load_dir(dir: &Path) -> Result<Vec<Loaded>, ScenarioError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ScenarioError {
        origin: dir.display().to_string(),
        line: None,
        path: String::new(),
        problem: format!("cannot list: {e}"),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|p| {
            let s = Scenario::load(&p);
            (p, s)
        })
        .collect())
}
