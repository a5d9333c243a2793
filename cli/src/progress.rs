//! A progress bar for long store operations, shown only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jitcache_store::Progress;

/// An indicatif bar behind the store's [`Progress`] trait. Hidden when stderr is not a
/// terminal or when JSON output was asked for, so pipes and scripts see no bar.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar labelled `what` (e.g. "verify"), visible only if `visible` and stderr is a tty.
    pub fn new(what: &'static str, visible: bool) -> Bar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if visible && std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} ({eta} left)")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what);
        Bar { bar }
    }
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(0);
    }

    fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
