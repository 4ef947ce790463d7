//! One TOML reader for every configuration file of the project — the gateway's site and rules
//! files, the HIL rig's scenarios — so that their errors look alike: the key path
//! (`devices[2].profile`) and the line, as serde and the TOML parser know them. Unknown keys are
//! the caller's types' business (`deny_unknown_fields`).

use std::string::{String, ToString};

/// Why a TOML text could not be read into its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    /// The line (1-based), when the parser knows it.
    pub line: Option<usize>,
    /// The key path, empty for the whole document.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

/// Reads `text` into `T`.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    let line_of = |span: Option<core::ops::Range<usize>>| {
        span.map(|s| text.get(..s.start).unwrap_or("").matches('\n').count() + 1)
    };
    let de = toml::Deserializer::parse(text).map_err(|e| TomlError {
        line: line_of(e.span()),
        path: String::new(),
        problem: e.message().trim().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        TomlError {
            line: line_of(inner.span()),
            path: if path == "." { String::new() } else { path },
            problem: inner.message().trim().to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        a: u8,
        items: std::vec::Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        b: u8,
    }

    #[test]
    fn errors_name_the_key_path_and_the_line() {
        let e = parse::<Doc>("a = 1\n[[items]]\nb = 1\n[[items]]\nb = 300\n").unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (Some(5), "items[1].b"));
        let e = parse::<Doc>("a = 1\nitems = []\nc = 2\n").unwrap_err();
        assert!(e.problem.contains("unknown field `c`"), "{e:?}");
        let e = parse::<Doc>("a = \n").unwrap_err();
        assert_eq!(e.line, Some(1));
    }
}
