#!/usr/bin/env bash
# Rebuilds vendor/h2 from the h2 release on crates.io and vendor/h2.patch (what the patch is and why:
# vendor/h2/HOOKWIRE.md).
#
#   bash vendor/apply-h2-patch.sh           rebuild vendor/h2 (HOOKWIRE.md kept)
#   bash vendor/apply-h2-patch.sh --check   fail unless the release + the patch give exactly the committed
#                                           vendor/h2, and cargo builds h2 from it (the patch is used)
#   bash vendor/apply-h2-patch.sh --diff    rewrite vendor/h2.patch from an edited vendor/h2
#
# The release comes from cargo's download cache, or is downloaded by cargo (`cargo fetch` in a throwaway
# package: the ordinary client, crates.io only), and its SHA-256 is checked. Needs bash, tar, diff, git, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

H2_VERSION=0.4.20
# crates.io's checksum of h2-0.4.20.crate (the `checksum` cargo records for it in a lock file).
H2_SHA256=7d29020232d6aa3fb1daca64c1127cf662cf97f254ae16c18c05b8ab635fc118
# Files of the release that vendor/h2 leaves out (examples, benches and the crate's own CI and lock file; the
# patch removes their entries and the dev-dependencies from Cargo.toml).
LEFT_OUT=(.cargo_vcs_info.json .github CONTRIBUTING.md Cargo.lock Cargo.toml.orig benches examples)

mode="${1:-apply}"
work="$(mktemp -d /tmp/hookwire-h2.XXXXXX)"
trap 'rm -rf "$work"' EXIT

crate_file() {
    local cache="${CARGO_HOME:-$HOME/.cargo}/registry/cache"
    local found
    found="$(ls "$cache"/*/"h2-$H2_VERSION.crate" 2>/dev/null | head -n 1 || true)"
    if [ -z "$found" ]; then
        mkdir -p "$work/fetch/src"
        printf '[package]\nname = "fetch-h2"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nh2 = "=%s"\n' \
            "$H2_VERSION" > "$work/fetch/Cargo.toml"
        : > "$work/fetch/src/lib.rs"
        (cd "$work/fetch" && cargo fetch --quiet) >&2
        found="$(ls "$cache"/*/"h2-$H2_VERSION.crate" | head -n 1)"
    fi
    echo "$found"
}

pristine() {
    local crate
    crate="$(crate_file)"
    echo "$H2_SHA256  $crate" | sha256sum --check --quiet - >&2
    mkdir -p "$work/release"
    tar -xzf "$crate" -C "$work/release"
    local dir="$work/release/h2-$H2_VERSION"
    (cd "$dir" && rm -rf "${LEFT_OUT[@]}")
    echo "$dir"
}

patched() {
    local dir
    dir="$(pristine)"
    cp -r "$dir" "$work/patched"
    # Outside any repository, `git apply` applies to the working folder as patch(1) would, refusing any fuzz.
    (cd "$work/patched" && git apply --whitespace=nowarn "$OLDPWD/vendor/h2.patch")
    echo "$work/patched"
}

case "$mode" in
    apply)
        dir="$(patched)"
        cp vendor/h2/HOOKWIRE.md "$work/HOOKWIRE.md"
        rm -rf vendor/h2
        cp -r "$dir" vendor/h2
        cp "$work/HOOKWIRE.md" vendor/h2/HOOKWIRE.md
        echo "vendor/h2: h2 $H2_VERSION from crates.io with vendor/h2.patch"
        ;;
    --check)
        dir="$(patched)"
        if ! diff -r --exclude=HOOKWIRE.md "$dir" vendor/h2; then
            echo "vendor/h2 is not h2 $H2_VERSION with vendor/h2.patch: rebuild it (bash vendor/apply-h2-patch.sh)" \
                "or rewrite the patch (--diff)" >&2
            exit 1
        fi
        echo "vendor/h2 is h2 $H2_VERSION from crates.io with vendor/h2.patch"
        # Cargo must build h2 from vendor/h2. A hyper or tonic that needs a newer h2 makes cargo take that one
        # from crates.io instead, warning only "Patch `h2 ...` was not used in the crate graph".
        tree="$(cargo tree --locked --invert h2 --depth 0 2>"$work/tree.err")" || {
            cat "$work/tree.err" >&2
            echo "cargo tree -i h2 failed (two versions of h2 in the graph?)" >&2
            exit 1
        }
        if grep -q "was not used" "$work/tree.err" || ! grep -Eq "^h2 v$H2_VERSION \(.*/vendor/h2\)$" <<<"$tree"; then
            cat "$work/tree.err" >&2
            echo "cargo does not build h2 from vendor/h2: $tree" >&2
            echo "(the patch is unused: port vendor/h2.patch to the h2 that the graph now needs, see vendor/h2/HOOKWIRE.md)" >&2
            exit 1
        fi
        echo "cargo builds $tree"
        ;;
    --diff)
        dir="$(pristine)"
        mkdir -p "$work/diff"
        cp -r "$dir" "$work/diff/a"
        cp -r vendor/h2 "$work/diff/b"
        rm "$work/diff/b/HOOKWIRE.md"
        # Paths a/... and b/..., without the timestamps diff writes, so that the file changes only with the code.
        (cd "$work/diff" && diff -ruN a b || true) | sed -E 's/^((---|\+\+\+) [ab]\/[^\t]*)\t.*/\1/' > vendor/h2.patch
        echo "vendor/h2.patch rewritten ($(grep -c '^diff ' vendor/h2.patch) files)"
        ;;
    *)
        echo "usage: $0 [--check | --diff]" >&2
        exit 2
        ;;
esac
