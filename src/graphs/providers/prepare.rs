//! Session options for one bundle, made once before its first session: the export target checked
//! against the requested providers (target.rs), and what the GPU providers take from the bundle — its
//! identity for the TensorRT engine cache key, the TensorRT profiles from the manifest's dims — so that
//! no provider code re-reads unimed.json from disk.

use std::collections::BTreeMap;

use super::tensorrt::{profiles, Profiles};
use super::{check_target, GRAPHS};
use crate::bundle::{Bundle, Target};
use crate::error::Result;
use crate::graphs::session::SessionOptions;

/// What the providers know about the bundle whose sessions they create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleContext {
    /// sha256 of unimed.json: the bundle's identity (the manifest records every other file's sha256).
    pub manifest_sha256: String,
    pub target: Target,
    /// TensorRT optimisation profiles by graph name, from the manifest's dims and `tensorrt.max_seq`.
    pub trt_profiles: BTreeMap<String, Profiles>,
}

/// `opts` for the sessions of `bundle`, or the target mismatch error (before any session exists).
pub fn for_bundle(bundle: &Bundle, opts: &SessionOptions) -> Result<SessionOptions> {
    check_target(bundle, opts)?;
    let max_seq = opts.providers.tensorrt.max_seq;
    let trt_profiles = GRAPHS
        .iter()
        .filter_map(|g| profiles(bundle.manifest(), g, max_seq).map(|p| (g.to_string(), p)))
        .collect();
    let mut out = opts.clone();
    out.providers.bundle = Some(BundleContext {
        manifest_sha256: bundle.manifest_sha256().to_string(),
        target: bundle.target(),
        trt_profiles,
    });
    Ok(out)
}
