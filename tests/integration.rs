//! The integration test binary: the whole tool driven as a user drives it.

mod support;

#[path = "integration/capture.rs"]
mod capture;
#[path = "integration/fixtures.rs"]
mod fixtures;
#[path = "integration/html.rs"]
mod html;
#[path = "integration/inspect.rs"]
mod inspect;
#[path = "integration/integrity.rs"]
mod integrity;
#[path = "integration/mirror.rs"]
mod mirror;
#[path = "integration/outputs.rs"]
mod outputs;
#[path = "integration/privileges.rs"]
mod privileges;
#[path = "integration/production.rs"]
mod production;
#[path = "integration/replay.rs"]
mod replay;
#[path = "integration/routes.rs"]
mod routes;
#[path = "integration/saved_report.rs"]
mod saved_report;
#[path = "integration/segmentation.rs"]
mod segmentation;
#[path = "integration/tap.rs"]
mod tap;
