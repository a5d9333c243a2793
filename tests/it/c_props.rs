//! Property tests of C programs against native builds over generated header trees (see
//! the module's tests).
