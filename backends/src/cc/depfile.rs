//! What the compiler says it read: the Make rules of `-MD -MF <file>`, and GCC's
//! include trace (`-H`), which names the precompiled headers that the depfile leaves out.

/// The prerequisites of every rule of a depfile written by GCC or Clang (`-MD`), in
/// order of appearance, unescaped; targets (the object, and the `-MP` phony targets)
/// are not included.
///
/// Understands what the compilers write: `\ ` (a space in a name), `\#`, `\:`, `$$`,
/// backslashes doubled before an escaped space, `\`-newline continuations, several
/// targets before the `:`, several rules, and `#` comments.
pub(crate) fn prerequisites(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut token = String::new();
    let mut in_token = false;
    let mut after_colon = false;
    let mut flush = |token: &mut String, in_token: &mut bool, after_colon: bool| {
        if *in_token && after_colon {
            out.push(std::mem::take(token));
        }
        token.clear();
        *in_token = false;
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\\' => {
                let start = i;
                while chars.get(i) == Some(&'\\') {
                    i += 1;
                }
                let run = i - start;
                let after = chars.get(i).copied();
                let crlf = after == Some('\r') && chars.get(i + 1) == Some(&'\n');
                if after == Some('\n') || crlf {
                    // A continuation: the line goes on, the word ends.
                    token.extend(std::iter::repeat_n('\\', run - 1));
                    flush(&mut token, &mut in_token, after_colon);
                    i += if crlf { 2 } else { 1 };
                } else if matches!(after, Some(' ' | '\t' | '#' | ':')) {
                    // 2n backslashes stand for n; an odd one escapes what follows.
                    token.extend(std::iter::repeat_n('\\', run / 2));
                    in_token = true;
                    if run % 2 == 1 {
                        token.push(after.unwrap_or(' '));
                        i += 1;
                    }
                } else {
                    token.extend(std::iter::repeat_n('\\', run));
                    in_token = true;
                }
                continue;
            }
            '$' if next == Some('$') => {
                token.push('$');
                in_token = true;
                i += 2;
                continue;
            }
            ' ' | '\t' | '\r' => flush(&mut token, &mut in_token, after_colon),
            '\n' => {
                flush(&mut token, &mut in_token, after_colon);
                after_colon = false;
            }
            '#' if !in_token => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            ':' if !after_colon && next.is_none_or(char::is_whitespace) => {
                flush(&mut token, &mut in_token, after_colon);
                after_colon = true;
            }
            c => {
                token.push(c);
                in_token = true;
            }
        }
        i += 1;
    }
    flush(&mut token, &mut in_token, after_colon);
    out
}

/// What GCC's `-H` printed on stderr.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct IncludeTrace {
    /// Headers the unit includes directly (depth 1), in order: the only places where
    /// GCC looks for a precompiled header.
    pub direct: Vec<String>,
    /// Precompiled headers GCC opened: used (`! x.h.gch`) or rejected (`x x.h.gch`).
    pub pch: Vec<String>,
}

/// Whether a stderr line belongs to the `-H` include trace: dots and a space before
/// a path, or `!`/`x` and a space before a precompiled header.
fn trace_line(line: &str) -> Option<(usize, &str)> {
    let dots = line.bytes().take_while(|&b| b == b'.').count();
    if dots > 0 {
        return line[dots..].strip_prefix(' ').map(|path| (dots, path));
    }
    line.strip_prefix("! ")
        .or_else(|| line.strip_prefix("x "))
        .map(|path| (0, path))
}

const GUARDS_HEADER: &str = "Multiple include guards may be useful for:";

/// The include trace in GCC's `-H` output.
pub(crate) fn include_trace(stderr: &str) -> IncludeTrace {
    let mut trace = IncludeTrace::default();
    for line in stderr.lines() {
        match trace_line(line) {
            Some((1, path)) => trace.direct.push(path.to_owned()),
            Some((0, path)) => trace.pch.push(path.to_owned()),
            _ => {}
        }
    }
    trace
}

/// `stderr` without the `-H` trace (and the include-guard list GCC prints after it),
/// so that a failed compile reports only its diagnostics.
pub(crate) fn without_include_trace(stderr: &str) -> String {
    let mut out = Vec::new();
    let mut in_guards = false;
    for line in stderr.lines() {
        if line == GUARDS_HEADER {
            in_guards = true;
            continue;
        }
        // The guard list is one file name a line; a diagnostic (`file:1:2: ...`) ends it.
        if in_guards && !line.contains(": ") {
            continue;
        }
        in_guards = false;
        if trace_line(line).is_none() {
            out.push(line);
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcc_depfile_with_continuations() {
        let text = "/tmp/x/unit.o: main.c /usr/include/stdc-predef.h inc/val.h \\\n \
                    /usr/include/stdio.h \\\n /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h\n";
        assert_eq!(
            prerequisites(text),
            [
                "main.c",
                "/usr/include/stdc-predef.h",
                "inc/val.h",
                "/usr/include/stdio.h",
                "/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h"
            ]
        );
    }

    #[test]
    fn escapes_spaces_dollars_hashes_and_backslashes() {
        // What GCC 12 writes for `sp ace/h$#.h` (checked on the development machine).
        assert_eq!(
            prerequisites("/tmp/sp.o: sp.c sp\\ ace/h$$\\#.h\n"),
            ["sp.c", "sp ace/h$#.h"]
        );
        // A backslash before an escaped space is doubled; elsewhere it is literal.
        assert_eq!(
            prerequisites("o: a\\\\\\ b c\\d e\\:f\n"),
            ["a\\ b", "c\\d", "e:f"]
        );
        // CRLF continuations and tabs.
        assert_eq!(prerequisites("o:\ta.h \\\r\n\tb.h\r\n"), ["a.h", "b.h"]);
    }

    #[test]
    fn several_targets_rules_phony_lines_and_comments() {
        let text = "# written by a compiler\n\
                    a.o b.o : x.c x.h\n\
                    y.o: y.c \\\n  y.h\n\
                    \n\
                    x.h:\n\
                    y.h:\n";
        assert_eq!(prerequisites(text), ["x.c", "x.h", "y.c", "y.h"]);
        // A colon inside a name is not the rule's colon.
        assert_eq!(prerequisites("o: C:x.h d\n"), ["C:x.h", "d"]);
        // No rule, no prerequisites; an unfinished last line still counts.
        assert!(prerequisites("just words\n").is_empty());
        assert_eq!(prerequisites("o: last.h"), ["last.h"]);
    }

    #[test]
    fn clang_depfile_with_two_space_continuations() {
        let text = "/tmp/c.o: main.c inc/val.h /usr/include/stdio.h \\\n  \
                    /usr/include/x86_64-linux-gnu/bits/libc-header-start.h \\\n  \
                    /usr/lib/llvm-14/lib/clang/14.0.6/include/stddef.h\n";
        assert_eq!(prerequisites(text).len(), 5);
    }

    #[test]
    fn include_trace_names_direct_includes_and_pchs() {
        let stderr = "! ./pch.h.gch\n usepch.c\n. inc/val.h\n.. inc/deeper.h\n\
                      x sub/stale.h.gch\n. /usr/include/stdio.h\n\
                      main.c:3:1: warning: something\n\
                      Multiple include guards may be useful for:\n/usr/include/x.h\ninc/val.h\n";
        let trace = include_trace(stderr);
        assert_eq!(trace.direct, ["inc/val.h", "/usr/include/stdio.h"]);
        assert_eq!(trace.pch, ["./pch.h.gch", "sub/stale.h.gch"]);
        assert_eq!(
            without_include_trace(stderr),
            " usepch.c\nmain.c:3:1: warning: something"
        );
        assert_eq!(
            without_include_trace("a.c:1:1: error: x\n. a.h\n./a.c:2:1: error: y"),
            "a.c:1:1: error: x\n./a.c:2:1: error: y"
        );
    }
}
