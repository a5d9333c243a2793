//! Tests of the C API through real C and C++ host programs, compiled at test time with
//! `cc` and `c++` against the built `libjitcache.so` (and `libjitcache.a`) and run as
//! separate processes.

mod bad_input;
mod c_host;
mod cxx_host;
mod header;
mod inputs;
mod llvm;
mod pch;
mod python;
mod redefine;
mod store;
mod support;
mod unwinders;
