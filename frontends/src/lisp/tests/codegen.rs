//! Code generation: every function passes the Cranelift verifier and
//! compiles for the host; names, signatures and imports follow the contract.

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{ExternalName, Function, UserFuncName};
use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::{Context, settings, verify_function};
use proptest::prelude::*;

use super::{ok, progen};
use crate::lisp::{Program, call_conv, compile_def, parse, runtime};

/// The host ISA with default flags (optimizing, to exercise the egraph passes too).
fn host_isa() -> OwnedTargetIsa {
    let mut b = settings::builder();
    settings::Configurable::set(&mut b, "opt_level", "speed").unwrap();
    let flags = settings::Flags::new(b);
    isa::lookup(crate::lisp::codegen::host_triple_name().parse().unwrap())
        .unwrap()
        .finish(flags)
        .unwrap()
}

/// Compiles every definition, verifies it and compiles it for the host.
pub(super) fn verify_program(p: &Program) -> Vec<Function> {
    let isa = host_isa();
    let mut out = Vec::new();
    for def in p.defs() {
        let funcs = compile_def(p, def).unwrap();
        assert_eq!(funcs.len(), 1);
        let func = funcs.into_iter().next().unwrap();
        if let Err(errors) = verify_function(&func, isa.flags()) {
            panic!(
                "{}: verifier errors: {errors}\n{}",
                def.name(),
                func.display()
            );
        }
        let mut ctx = Context::for_function(func.clone());
        if let Err(e) = ctx.compile(&*isa, &mut ControlPlane::default()) {
            panic!(
                "{}: compile error: {:?}\n{}",
                def.name(),
                e.inner,
                func.display()
            );
        }
        out.push(func);
    }
    out
}

fn imports(func: &Function) -> Vec<(String, usize, usize)> {
    let mut v: Vec<_> = func
        .dfg
        .ext_funcs
        .values()
        .map(|ext| {
            let ExternalName::TestCase(name) = &ext.name else {
                panic!("not a testcase name: {:?}", ext.name);
            };
            assert!(!ext.colocated);
            let sig = &func.dfg.signatures[ext.signature];
            assert_eq!(sig.call_conv, call_conv().unwrap());
            assert!(sig.params.iter().all(|p| p.value_type == I64));
            assert!(sig.returns.iter().all(|p| p.value_type == I64));
            (
                String::from_utf8(name.raw().to_vec()).unwrap(),
                sig.params.len(),
                sig.returns.len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn functions_follow_the_contract() {
    let p = ok("
        (defn add3 [a b c] (+ a b c))
        (defn main [] (println (add3 1 2 3) (add3 4 5 6)) (println) (/ 10 (add3 1 1 1)))");
    let funcs = verify_program(&p);
    for (def, func) in p.defs().iter().zip(&funcs) {
        assert_eq!(func.name, UserFuncName::testcase(def.symbol()));
        assert_eq!(func.signature.call_conv, call_conv().unwrap());
        assert_eq!(func.signature.params.len(), def.arity());
        assert_eq!(func.signature.returns.len(), 1);
        assert!(func.signature.params.iter().all(|p| p.value_type == I64));
        assert_eq!(func.signature.returns[0].value_type, I64);
        assert!(func.global_values.is_empty(), "no data objects");
    }
    assert!(imports(&funcs[0]).is_empty());
    assert_eq!(
        imports(&funcs[1]),
        vec![
            ("jitcache_lisp_fn3_add3".into(), 3, 1),
            (runtime::DIV_BY_ZERO.into(), 2, 0),
            (runtime::NEWLINE.into(), 0, 0),
            (runtime::PRINT_I64.into(), 2, 0),
        ]
    );
}

#[test]
fn call_conv_is_the_hosts_default() {
    let expected = if cfg!(all(target_arch = "aarch64", target_os = "macos")) {
        isa::CallConv::AppleAarch64
    } else if cfg!(windows) {
        isa::CallConv::WindowsFastcall
    } else {
        isa::CallConv::SystemV
    };
    assert_eq!(call_conv().unwrap(), expected);
}

#[test]
fn literal_divisors_need_no_check() {
    let p = ok("(defn main [] (+ (/ 7 2) (mod 7 -3) (/ 5 -1) (mod 5 -1)))");
    let funcs = verify_program(&p);
    assert!(imports(&funcs[0]).is_empty(), "no division-by-zero check");
    let p = ok("(defn main [] (/ 7 0))");
    let funcs = verify_program(&p);
    assert_eq!(imports(&funcs[0]).len(), 1, "a zero literal still reports");
}

#[test]
fn every_construct_verifies() {
    let p = ok("
        (defn f [n acc] (if (<= n 0) acc (recur (- n 1) (+ acc n))))
        (defn g [n] (if (> n 0) (recur (- n 1))))
        (defn spin [] (loop [] (recur)))
        (defn spin-after [x] (+ x (loop [] (recur))))
        (defn both-recur [n] (if n (recur 0) (recur 1)))
        (defn and-diverges [x] (and x (loop [] (recur)) 3))
        (defn or-diverges [x] (or (loop [] (recur)) x))
        (defn h [x y]
          (let [a (and) b (or) c (and x y) d (or x y 0) e (and x)]
            (do)
            (let [])
            (if x (println) (println a b c d e))
            (< x) (= x y 1) (>= x y) (> 1 2 3) (<= 1 1 2)
            (not (not x))
            (- x) (- x y 1) (+) (*) (* x y 2)
            (/ x y) (/ x y 2) (mod x y) (mod x 3) (mod x -1) (/ x -1) (/ x 0) (mod x 0)
            (loop [i 0 s 0] (if (< i 10) (recur (+ i 1) (+ s (loop [j i] (if (> j 0) (recur (- j 1)) j)))) s))))
        (defn empty [])
        (defn main [] (f 10 0) (g 3) (h 1 2) (empty) (if 0 (spin) 0) (if 0 (spin-after 1) 0)
          (if 0 (both-recur 1) 0) (and-diverges 0) (or-diverges 1))");
    verify_program(&p);
}

#[test]
fn compile_def_rejects_a_foreign_definition() {
    let a = ok("(defn f [x] x) (defn main [] 0)");
    let b = ok("(defn g [x] x) (defn main [] 0)");
    assert!(compile_def(&a, b.def("g").unwrap()).is_err());
    assert!(compile_def(&a, a.def("f").unwrap()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every definition of random generated programs verifies and compiles.
    #[test]
    fn generated_programs_verify_and_compile(seed in any::<u64>()) {
        let src = progen::program(seed);
        let p = parse(&src).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        verify_program(&p);
    }
}

/// Random forms over the language's vocabulary: many invalid programs,
/// and valid ones with unusual shapes (heads are names of forms, arguments
/// mostly numbers and locals).
fn soup() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        4 => prop::sample::select(vec!["0", "1", "-1", "7", "-9223372036854775808"]),
        3 => prop::sample::select(vec!["x", "y"]),
        1 => prop::sample::select(vec!["f", "+", "recur", "[]", "()"]),
    ]
    .prop_map(str::to_owned);
    let head = prop::sample::select(vec![
        "let", "loop", "recur", "if", "do", "and", "or", "+", "-", "*", "/", "mod", "<", "=",
        "not", "println", "f", "g", "main",
    ]);
    atom.prop_recursive(4, 48, 4, move |inner| {
        prop_oneof![
            4 => (head.clone(), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(h, v)| format!("({h} {})", v.join(" "))),
            1 => (head.clone(), prop::collection::vec(("[xy]", inner.clone()), 0..3), inner.clone())
                .prop_map(|(h, v, body)| {
                    let b: Vec<String> = v.into_iter().map(|(n, e)| format!("{n} {e}")).collect();
                    format!("({h} [{}] {body})", b.join(" "))
                }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the forms, parsing never panics, and whatever parses
    /// compiles to verified code.
    #[test]
    fn random_forms_parse_or_fail_cleanly(a in soup(), b in soup(), c in soup()) {
        for body in [&a, &b, &c] {
            let src = format!("(defn f [x y] {body})\n(defn g [x] (f x {a}))\n(defn main [] (f 1 2))");
            if let Ok(p) = parse(&src) {
                verify_program(&p);
            }
        }
    }
}
