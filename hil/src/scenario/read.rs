//! Reading scenario files: TOML into the raw types (errors with key path and line), one
//! file, or every file of a directory.

use std::path::{Path, PathBuf};

use super::{RawScenario, Scenario, ScenarioError};

/// Reads the TOML into the raw types; errors carry the key path and line.
pub fn parse_raw(text: &str, origin: &str) -> Result<RawScenario, ScenarioError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| text.get(..s.start).unwrap_or("").matches('\n').count() + 1)
    };
    let de = toml::Deserializer::parse(text).map_err(|e| ScenarioError {
        origin: origin.to_string(),
        line: line_of(e.span()),
        path: String::new(),
        problem: e.message().trim().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ScenarioError {
            origin: origin.to_string(),
            line: line_of(inner.span()),
            path: if path == "." { String::new() } else { path },
            problem: inner.message().trim().to_string(),
        }
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
