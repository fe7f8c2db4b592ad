//! The Python interpreter for the interop tests: `$LARIAT_PYTHON`, or the
//! virtualenv's that `scripts/setup-python.sh` sets up (run by
//! `scripts/test.sh`; idempotent). Include it from an integration test with
//!
//! ```ignore
//! #[path = "support/python.rs"]
//! mod python;
//! ```

use std::process::Command;

/// The interpreter's path: `$LARIAT_PYTHON`, or the last line printed by
/// `scripts/setup-python.sh`. Blocks while the script runs.
pub fn python() -> String {
    if let Ok(p) = std::env::var("LARIAT_PYTHON") {
        return p;
    }
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/setup-python.sh"
        ))
        .output()
        .expect("run scripts/setup-python.sh");
    assert!(
        out.status.success(),
        "scripts/setup-python.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}
