//! Key properties: every field counts, fields cannot bleed into each other, the same
//! inputs give the same key in another process, and a golden vector pins the encoding.

use std::fmt::Write as _;
use std::path::Path;

use jitcache_store::{FlagOrder, KEY_FORMAT_VERSION, Key, KeyBuilder};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use crate::common::child_command;

/// Every input of a key, in clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInput {
    ns: String,
    name: String,
    unit: Vec<u8>,
    backend: String,
    version: String,
    flags: Vec<String>,
    ordered: bool,
    target: String,
    deps: Vec<Vec<u8>>,
}

impl KeyInput {
    fn builder(&self) -> KeyBuilder {
        let mut b = KeyBuilder::new(&self.ns, &self.name);
        let order = if self.ordered {
            FlagOrder::Ordered
        } else {
            FlagOrder::Unordered
        };
        b.unit(&self.unit)
            .backend(&self.backend, &self.version)
            .flags(&self.flags, order)
            .target(&self.target);
        for d in &self.deps {
            b.dep(d);
        }
        b
    }

    fn key(&self) -> Key {
        self.builder().build()
    }

    /// One line: every field as hex, lists as `count:item,item`.
    fn encode(&self) -> String {
        let hex = |b: &[u8]| {
            b.iter().fold(String::new(), |mut s, x| {
                let _ = write!(s, "{x:02x}");
                s
            })
        };
        let list = |items: Vec<String>| format!("{}:{}", items.len(), items.join(","));
        [
            hex(self.ns.as_bytes()),
            hex(self.name.as_bytes()),
            hex(&self.unit),
            hex(self.backend.as_bytes()),
            hex(self.version.as_bytes()),
            list(self.flags.iter().map(|f| hex(f.as_bytes())).collect()),
            u8::from(self.ordered).to_string(),
            hex(self.target.as_bytes()),
            list(self.deps.iter().map(|d| hex(d)).collect()),
        ]
        .join(" ")
    }

    fn decode(line: &str) -> KeyInput {
        let unhex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        };
        let text = |s: &str| String::from_utf8(unhex(s)).expect("utf-8");
        let list = |s: &str| -> Vec<Vec<u8>> {
            let (n, items) = s.split_once(':').expect("count");
            if n == "0" {
                Vec::new()
            } else {
                items.split(',').map(unhex).collect()
            }
        };
        let f: Vec<&str> = line.split(' ').collect();
        KeyInput {
            ns: text(f[0]),
            name: text(f[1]),
            unit: unhex(f[2]),
            backend: text(f[3]),
            version: text(f[4]),
            flags: list(f[5])
                .into_iter()
                .map(|b| String::from_utf8(b).expect("utf-8"))
                .collect(),
            ordered: f[6] == "1",
            target: text(f[7]),
            deps: list(f[8]),
        }
    }
}

fn small_string() -> impl Strategy<Value = String> {
    prop::string::string_regex("[a-c\u{e9}]{0,4}").expect("regex")
}

fn key_input() -> impl Strategy<Value = KeyInput> {
    (
        (
            small_string(),
            small_string(),
            prop::collection::vec(any::<u8>(), 0..24),
        ),
        (small_string(), small_string()),
        (prop::collection::vec(small_string(), 0..4), any::<bool>()),
        small_string(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..6), 0..4),
    )
        .prop_map(
            |((ns, name, unit), (backend, version), (flags, ordered), target, deps)| KeyInput {
                ns,
                name,
                unit,
                backend,
                version,
                flags,
                ordered,
                target,
                deps,
            },
        )
}

/// Changes field `which` of `input` in a way that changes what the key must mean.
fn mutate(input: &KeyInput, which: u8) -> KeyInput {
    let mut m = input.clone();
    match which % 9 {
        0 => m.ns.push('x'),
        1 => m.name.push('x'),
        2 => m.unit.push(0),
        3 => m.backend.push('x'),
        4 => m.version.push('x'),
        5 => {
            let mut new = String::from("z");
            while m.flags.contains(&new) {
                new.push('z');
            }
            m.flags.push(new);
        }
        6 => m.ordered = !m.ordered,
        7 => m.target.push('x'),
        _ => {
            let mut new = vec![0xff];
            while m.deps.contains(&new) {
                new.push(0xff);
            }
            m.deps.push(new);
        }
    }
    m
}

proptest! {
    #[test]
    fn any_field_change_changes_the_key(input in key_input(), which in 0u8..9) {
        let changed = mutate(&input, which);
        prop_assert_ne!(input.key(), changed.key(), "field {} changed", which);
        let diffs = input.builder().components().differences(&changed.builder().components());
        prop_assert_eq!(diffs.len(), 1);
    }

    #[test]
    fn builder_keys_equal_key_of_keys(input in key_input(), repeat in any::<bool>()) {
        // `key_of` takes 32-byte interface hashes, in any order, duplicates allowed.
        let mut deps: Vec<[u8; 32]> = input
            .deps
            .iter()
            .map(|d| *blake3::hash(d).as_bytes())
            .collect();
        if repeat {
            deps.extend(deps.first().copied());
            deps.reverse();
        }
        let mut hashed = input.clone();
        hashed.deps = deps.iter().map(|d| d.to_vec()).collect();
        let full = hashed.builder();
        // The prototype's own unit bytes and dependencies are not part of `key_of`'s key.
        let prototype = input.builder();
        let mut from_prototype = prototype.for_unit(&input.ns, &input.name);
        from_prototype.unit(&input.unit);
        for d in &deps {
            from_prototype.dep(d);
        }
        let fast = prototype.key_of(&input.ns, &input.name, &input.unit, &deps);
        prop_assert_eq!(fast, full.build());
        prop_assert_eq!(fast, full.components().key());
        prop_assert_eq!(fast, from_prototype.build());
    }

    #[test]
    fn same_inputs_same_key(input in key_input()) {
        prop_assert_eq!(input.key(), input.clone().key());
        prop_assert_eq!(input.builder().components().key(), input.key());
    }

    #[test]
    fn boundaries_do_not_collide(a in small_string(), b in "[a-c]{1,3}", c in small_string()) {
        let ab = format!("{a}{b}");
        let bc = format!("{b}{c}");
        // namespace | name
        prop_assert_ne!(KeyBuilder::new(&ab, &c).build(), KeyBuilder::new(&a, &bc).build());
        // name | unit bytes
        prop_assert_ne!(
            KeyBuilder::new("n", &ab).unit(c.as_bytes()).build(),
            KeyBuilder::new("n", &a).unit(bc.as_bytes()).build()
        );
        // backend name | version
        prop_assert_ne!(
            KeyBuilder::new("n", "u").backend(&ab, &c).build(),
            KeyBuilder::new("n", "u").backend(&a, &bc).build()
        );
        // flag | flag, and one flag vs two. (As sets, {ab, c} and {a, bc} can be the
        // same set, e.g. a = c = "": then the keys must agree instead.)
        let same_set = {
            let mut x = [&ab, &c];
            let mut y = [&a, &bc];
            x.sort();
            y.sort();
            x == y
        };
        for order in [FlagOrder::Ordered, FlagOrder::Unordered] {
            let left = KeyBuilder::new("n", "u").flags([&ab, &c], order).build();
            let right = KeyBuilder::new("n", "u").flags([&a, &bc], order).build();
            if order == FlagOrder::Unordered && same_set {
                prop_assert_eq!(left, right);
            } else {
                prop_assert_ne!(left, right);
            }
            prop_assert_ne!(
                KeyBuilder::new("n", "u").flags([&a, &b], order).build(),
                KeyBuilder::new("n", "u").flags([format!("{a}{b}")], order).build()
            );
        }
        // backend version | target
        prop_assert_ne!(
            KeyBuilder::new("n", "u").backend("be", &ab).target(&c).build(),
            KeyBuilder::new("n", "u").backend("be", &a).target(&bc).build()
        );
        // dep | dep (a set, like unordered flags)
        let left = KeyBuilder::new("n", "u").dep(ab.as_bytes()).dep(c.as_bytes()).build();
        let right = KeyBuilder::new("n", "u").dep(a.as_bytes()).dep(bc.as_bytes()).build();
        if same_set {
            prop_assert_eq!(left, right);
        } else {
            prop_assert_ne!(left, right);
        }
    }

    #[test]
    fn unordered_flags_and_deps_are_sets(
        input in key_input(),
        seed in any::<u64>(),
    ) {
        let mut shuffled = input.clone();
        let n = shuffled.flags.len().max(1);
        shuffled.flags.rotate_left((seed as usize) % n);
        if let Some(first) = input.flags.first() {
            shuffled.flags.push(first.clone());
        }
        shuffled.deps.reverse();
        shuffled.deps.extend(input.deps.first().cloned());
        shuffled.ordered = false;
        let mut original = input.clone();
        original.ordered = false;
        prop_assert_eq!(original.key(), shuffled.key());
    }

    #[test]
    fn ordered_flags_keep_their_order(a in "[a-c]{1,3}", b in "[d-f]{1,3}") {
        prop_assert_ne!(
            KeyBuilder::new("n", "u").flags([&a, &b], FlagOrder::Ordered).build(),
            KeyBuilder::new("n", "u").flags([&b, &a], FlagOrder::Ordered).build()
        );
        prop_assert_eq!(
            KeyBuilder::new("n", "u").flags([&a, &b], FlagOrder::Unordered).build(),
            KeyBuilder::new("n", "u").flags([&b, &a], FlagOrder::Unordered).build()
        );
    }

    #[test]
    fn key_text_round_trips(input in key_input()) {
        let key = input.key();
        prop_assert_eq!(key.to_string().parse::<Key>().ok(), Some(key));
        prop_assert_eq!(Key::from_bytes(*key.as_bytes()), key);
    }
}

/// The encoding is pinned: if this changes, the change must be deliberate and
/// [`KEY_FORMAT_VERSION`] bumped (and this vector updated with it).
#[test]
fn golden_vector() {
    assert_eq!(KEY_FORMAT_VERSION, 1);
    let key = KeyBuilder::new("lisp", "fib")
        .unit(b"(defun fib (n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))")
        .backend("cranelift", "0.135.0")
        .flags(
            ["opt_level=speed", "enable_verifier=false"],
            FlagOrder::Unordered,
        )
        .target("x86_64-unknown-linux-gnu+sse4.2,avx2")
        .dep(&[0xab; 32])
        .dep(&[0x01; 32])
        .build();
    assert_eq!(key.to_string(), GOLDEN);
    let empty = KeyBuilder::new("", "").build();
    assert_eq!(empty.to_string(), GOLDEN_EMPTY);
}

const GOLDEN: &str = "613c43680010754016970cc11f7458155525e9ed69f01d6657ea0993f4fcfd65";
const GOLDEN_EMPTY: &str = "5a0c1281ce76f61d748d18d1317aa23efb8a4f9898d8ca7be86e5f43f34d9950";

/// The encoding as `docs/format.md` describes it, written out independently of the
/// crate: the golden key must come out of it too.
#[test]
fn golden_vector_follows_the_documented_encoding() {
    fn item(h: &mut blake3::Hasher, bytes: &[u8]) {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    fn digest(context: &str, fill: impl FnOnce(&mut blake3::Hasher)) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(context);
        fill(&mut h);
        *h.finalize().as_bytes()
    }
    let unit = digest("jitcache 2025-01 key v1 unit", |h| {
        item(
            h,
            b"(defun fib (n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))",
        )
    });
    let backend = digest("jitcache 2025-01 key v1 backend", |h| {
        item(h, b"cranelift");
        item(h, b"0.135.0");
    });
    let flags = digest("jitcache 2025-01 key v1 flags", |h| {
        h.update(&[0]); // unordered
        h.update(&2u64.to_le_bytes());
        item(h, b"enable_verifier=false"); // sorted
        item(h, b"opt_level=speed");
    });
    let target = digest("jitcache 2025-01 key v1 target", |h| {
        item(h, b"x86_64-unknown-linux-gnu+sse4.2,avx2")
    });
    let deps = digest("jitcache 2025-01 key v1 deps", |h| {
        h.update(&2u64.to_le_bytes());
        item(h, &[0x01; 32]); // sorted
        item(h, &[0xab; 32]);
    });
    let key = digest("jitcache 2025-01 key v1", |h| {
        h.update(&1u32.to_le_bytes());
        item(h, b"lisp");
        item(h, b"fib");
        for d in [unit, backend, flags, target, deps] {
            h.update(&d);
        }
    });
    assert_eq!(blake3::Hash::from_bytes(key).to_hex().as_str(), GOLDEN);
}

/// The same inputs give the same key in another process.
#[test]
fn same_key_in_another_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut runner = TestRunner::deterministic();
    let strategy = key_input();
    let inputs: Vec<KeyInput> = (0..64)
        .map(|_| strategy.new_tree(&mut runner).expect("value").current())
        .collect();
    let lines: Vec<String> = inputs.iter().map(KeyInput::encode).collect();
    let input_path = dir.path().join("inputs");
    std::fs::write(&input_path, lines.join("\n")).expect("write inputs");
    let out = child_command("keys", &input_path)
        .output()
        .expect("run child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = std::fs::read_to_string(dir.path().join("keys")).expect("child wrote keys");
    let ours: Vec<String> = inputs.iter().map(|i| i.key().to_string()).collect();
    assert_eq!(theirs.lines().collect::<Vec<_>>(), ours);
}

/// Child side of [`same_key_in_another_process`]: reads inputs, writes their keys next
/// to them.
pub fn child_keys(input_path: &Path) {
    let text = std::fs::read_to_string(input_path).expect("read inputs");
    let keys: Vec<String> = text
        .lines()
        .map(|l| {
            let input = KeyInput::decode(l);
            assert_eq!(KeyInput::decode(&input.encode()), input);
            input.key().to_string()
        })
        .collect();
    let out = input_path.with_file_name("keys");
    std::fs::write(out, keys.join("\n")).expect("write keys");
}
