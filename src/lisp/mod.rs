//! A small Clojure-like Lisp compiled through Cranelift (being built).
