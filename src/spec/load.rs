//! Spec loading and validation. STUB: owned by the spec helper.
use std::path::{Path, PathBuf};

use super::ServiceSpec;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct SpecError {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} error(s) in specs", .0.len())]
pub struct SpecErrors(pub Vec<SpecError>);

pub fn parse_spec(_path: &Path, _text: &str) -> Result<ServiceSpec, SpecErrors> {
    todo!()
}

pub fn load_path(_path: &Path) -> Result<Vec<ServiceSpec>, SpecErrors> {
    todo!()
}

pub fn load_paths(_paths: &[PathBuf]) -> Result<Vec<ServiceSpec>, SpecErrors> {
    todo!()
}
