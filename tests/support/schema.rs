//! The published report schema, and a validator for the subset of JSON Schema it uses.

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
    let mut errors = Vec::new();
    validate(&schema, &schema, report, "$", &mut errors);
    errors
}

/// A JSON Schema validator for the subset `docs/report.schema.json` uses: type, const,
/// required, properties, additionalProperties, items, $ref, allOf, oneOf, minimum, maximum.
pub fn validate(schema: &Value, root: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/$defs/");
        return validate(&root["$defs"][name], root, v, at, errors);
    }
    if let Some(c) = schema.get("const") {
        if v != c {
            errors.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            errors.push(format!("{at}: {v} is not {types:?}"));
            return;
        }
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64()) {
        if n < min {
            errors.push(format!("{at}: {n} < {min}"));
        }
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), v.as_f64()) {
        if n > max {
            errors.push(format!("{at}: {n} > {max}"));
        }
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        validate(sub, root, v, at, errors);
    }
    if let Some(any) = schema["oneOf"].as_array() {
        let passing = any
            .iter()
            .filter(|sub| {
                let mut e = Vec::new();
                validate(sub, root, v, at, &mut e);
                e.is_empty()
            })
            .count();
        if passing != 1 {
            errors.push(format!("{at}: matches {passing} of oneOf"));
        }
    }
    if let Some(obj) = v.as_object() {
        for req in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(req) {
                errors.push(format!("{at}: missing {req}"));
            }
        }
        for (k, val) in obj {
            let path = format!("{at}.{k}");
            if let Some(p) = schema["properties"].get(k) {
                validate(p, root, val, &path, errors);
            } else if schema["additionalProperties"] == Value::Bool(false) {
                errors.push(format!("{path}: not in the schema"));
            } else if schema["additionalProperties"].is_object() {
                validate(&schema["additionalProperties"], root, val, &path, errors);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            validate(items, root, item, &format!("{at}[{i}]"), errors);
        }
    }
}
