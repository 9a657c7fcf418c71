//! Validated, typed settings built from the command line: the limits of every stage and what
//! each command needs, so the library can be driven in-process without clap.

use std::path::PathBuf;

use crate::cli::{InspectArgs, InspectFormat};

/// The limits of every stage; defaults are RELIABILITY.md section 4.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub capture: crate::capture::Limits,
    pub wire: crate::wire::Limits,
    pub reassembly: crate::reassembly::Limits,
    pub http1: crate::http1::Limits,
}

#[derive(Clone, Debug)]
pub struct InspectSettings {
    pub files: Vec<PathBuf>,
    pub ports: Vec<u16>,
    pub bpf: Option<String>,
    pub format: InspectFormat,
    pub redact: bool,
    pub limits: Limits,
}

impl InspectSettings {
    pub fn from_args(args: InspectArgs) -> anyhow::Result<Self> {
        let mut ports = args.ports;
        ports.sort_unstable();
        ports.dedup();
        Ok(InspectSettings {
            files: args.files,
            ports,
            bpf: args.bpf,
            format: args.format,
            redact: args.redact,
            limits: Limits::default(),
        })
    }
}
