//! Raw serde mirror of the spec YAML. STUB: owned by the spec helper.
