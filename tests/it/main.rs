//! Integration tests of the whole workspace, one test binary with a module per area.
mod exec;
mod invalidation;
mod util;
