//! libbpf's own messages: routed to `tracing` (target `libbpf`) and the
//! last warnings kept, so a failed load can say what the verifier said.

use std::sync::{Mutex, Once};

use libbpf_rs::PrintLevel;

/// How much of libbpf's warning output is kept.
const KEEP: usize = 16 << 10;

static WARNINGS: Mutex<String> = Mutex::new(String::new());
static INSTALL: Once = Once::new();

fn print(level: PrintLevel, message: String) {
    let line = message.trim_end();
    match level {
        PrintLevel::Warn => {
            tracing::debug!(target: "libbpf", "{line}");
            if let Ok(mut kept) = WARNINGS.lock() {
                kept.push_str(line);
                kept.push('\n');
                if kept.len() > KEEP {
                    let cut = kept.len() - KEEP;
                    let cut = (cut..kept.len())
                        .find(|&i| kept.is_char_boundary(i))
                        .unwrap_or(kept.len());
                    kept.drain(..cut);
                }
            }
        }
        PrintLevel::Info => tracing::debug!(target: "libbpf", "{line}"),
        PrintLevel::Debug => tracing::trace!(target: "libbpf", "{line}"),
    }
}

/// Routes libbpf's output through [`print`] (once per process).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        libbpf_rs::set_print(Some((PrintLevel::Debug, print)));
    });
}

/// The last `max` bytes of libbpf's warnings, on one line-joined string,
/// or `"nothing"`.
pub(crate) fn tail(max: usize) -> String {
    let kept = WARNINGS.lock().map(|k| k.clone()).unwrap_or_default();
    let start = kept.len().saturating_sub(max);
    let start = (start..kept.len())
        .find(|&i| kept.is_char_boundary(i))
        .unwrap_or(kept.len());
    let text = kept[start..].trim();
    if text.is_empty() {
        "nothing".to_owned()
    } else {
        text.replace('\n', " | ")
    }
}
