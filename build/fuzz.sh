#!/bin/bash
# Builds the fuzz targets (fuzz/) with the coverage instrumentation
# libFuzzer reads (SanitizerCoverage, through the stable compiler's -C
# flags: no nightly toolchain) and runs each for SECONDS (default 20), on
# the corpus it kept from earlier runs (target/fuzz/corpus/TARGET) and the
# seeds in fuzz/seeds/TARGET. A crash, a panic, an allocation past the
# frame limit or a run out of memory fails the script; its input is in
# target/fuzz/artifacts/TARGET/.
#   build/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
host=$(rustc -vV | sed -n 's/^host: //p')
out=target/fuzz
# --target: the flags then reach the fuzzed code, not the build scripts.
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares" \
    cargo build --release --manifest-path fuzz/Cargo.toml --target "$host" --target-dir "$out" --bins
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame exchange handoff environ headers inflate input)
fi
for t in "${targets[@]}"; do
    corpus=$out/corpus/$t
    mkdir -p "$corpus" "$out/artifacts/$t"
    seeds=()
    [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
    echo "== fuzz $t: $seconds s"
    log=$out/$t.log
    status=0
    "$out/$host/release/$t" -max_total_time="$seconds" -rss_limit_mb=1024 \
        -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$t/" "$corpus" "${seeds[@]}" >"$log" 2>&1 || status=$?
    grep -E '(DONE|panicked|ERROR|SUMMARY|allocation past|Test unit written)' "$log" || true
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $t failed: see $out/artifacts/$t/"
        exit 1
    fi
done
echo "fuzz: ${#targets[@]} targets ran ${seconds} s each without a failure"
