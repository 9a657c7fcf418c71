//! The JSON Schema of the report: generated from the types by schemars, with the schemas
//! the types cannot say themselves (a nullable value always written, the counts keyed by
//! the reasons and error kinds of the code's own enums).

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use super::Report;
use crate::replay::client::Failure;
use crate::replay::select::Skip;
use crate::replay::stats::Dropped;

/// `T` or null: a value always written, null when there is none.
pub(super) fn nullable<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let inner = generator.subschema_for::<T>();
    json_schema!({"anyOf": [inner, {"type": "null"}]})
}

/// A map of counts whose keys are `names`, each optional.
fn counts_of(names: &[&str], description: &str, required: bool) -> Schema {
    let mut properties = serde_json::Map::new();
    for name in names {
        properties.insert(
            (*name).into(),
            serde_json::json!({"type": "integer", "minimum": 0}),
        );
    }
    let mut schema = json_schema!({
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": false
    });
    if required {
        schema.insert("required".into(), serde_json::json!(names));
    }
    schema
}

fn skip_names(category: &str) -> Vec<&'static str> {
    Skip::ALL
        .iter()
        .filter(|s| s.category() == category)
        .map(|s| s.name())
        .collect()
}

pub(super) fn filtered_schema(_: &mut SchemaGenerator) -> Schema {
    counts_of(
        &skip_names("filtered"),
        "Whole requests not replayed by choice or rule, by reason.",
        false,
    )
}

pub(super) fn incomplete_schema(_: &mut SchemaGenerator) -> Schema {
    counts_of(
        &skip_names("incomplete"),
        "Requests not whole in the capture, by reason.",
        false,
    )
}

pub(super) fn dropped_schema(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = Dropped::ALL.iter().map(|d| d.name()).collect();
    counts_of(&names, "Selected requests not sent, by reason.", false)
}

pub(super) fn errors_schema(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = Failure::ALL.iter().map(|f| f.name()).collect();
    counts_of(
        &names,
        "Shadow only: transport errors by kind. `shutdown` (unanswered when the drain deadline passed) is the run's doing, not the shadow's: it is in neither `error_rate` nor the `shadow.errors` total `--fail-if` compares.",
        true,
    )
}

/// The JSON Schema of [`Report`], as `docs/report.schema.json` holds it.
pub fn schema() -> Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Report>()
}
