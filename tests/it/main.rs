//! Integration tests of the whole workspace, one test binary with a module per area.
mod batch_manifests;
mod bypass;
mod c_headers;
mod c_props;
mod cli;
mod exec;
mod file_digests;
mod invalidation;
mod layout;
mod lisp_props;
mod packs;
mod remote;
mod seaweed;
mod single_flight;
mod util;
