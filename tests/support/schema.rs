//! The published report schema (`docs/report.schema.json`, generated from the report's
//! types), checked with a maintained JSON Schema validator.

use std::path::PathBuf;

use serde_json::Value;

/// `docs/report.schema.json`.
pub fn report_schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("schema JSON")
}

/// What is wrong with `report` by the published schema (empty when it conforms).
pub fn schema_errors(report: &Value) -> Vec<String> {
    let schema = report_schema();
    let validator = jsonschema::draft202012::new(&schema).expect("the schema is valid");
    validator
        .iter_errors(report)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}
