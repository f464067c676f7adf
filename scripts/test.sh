#!/usr/bin/env bash
# The test command: everything CI checks, in the order it checks it.
# 1. the local servers answer (installed if missing, started if down), 2. the Python interop
# virtualenv exists, 3. rustfmt, 4. clippy with warnings as errors, 5. the API documentation
# with warnings as errors (every public item of the library crates documented), 6. every test
# in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
scripts/python-env.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
RUSTDOCFLAGS='-D warnings' cargo doc --no-deps --workspace --all-features --locked --quiet
cargo test --workspace --locked
