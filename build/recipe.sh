#!/usr/bin/env bash
# recipe.sh DOCKERFILE CONTEXT ROOT: carries out a container recipe's steps
# in the Debian root ROOT (a copy of the base its FROM names), where no OCI
# runtime or registry is at hand: COPY from CONTEXT, RUN inside the root
# (build/in-root.sh), and USER, WORKDIR and CMD written to ROOT/.recipe for
# whoever runs the result. FROM, EXPOSE and STOPSIGNAL are the runtime's
# and are skipped. Any other instruction fails: the recipe would not mean
# here what it means in an image.
set -euo pipefail
dockerfile=$1 context=$(cd "$2" && pwd) root=$(cd "$3" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
user=root workdir=/ cmd=""
# One instruction a line: continuations joined, comments dropped.
instructions=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$dockerfile" | grep -v '^[[:space:]]*#' | grep -v '^[[:space:]]*$')
while IFS= read -r line; do
    verb=${line%% *} rest=${line#* }
    case "$verb" in
        FROM|EXPOSE|STOPSIGNAL) ;;
        COPY)
            read -r -a words <<<"$rest"
            dest=${words[-1]}
            unset 'words[-1]'
            mkdir -p "$root$dest"
            for w in "${words[@]}"; do
                for src in $context/$w; do
                    [ -e "$src" ] || { echo "recipe.sh: COPY $w: nothing matches" >&2; exit 1; }
                    if [ -d "$src" ]; then cp -a "$src/." "$root$dest"; else cp -a "$src" "$root$dest"; fi
                done
            done ;;
        RUN) "$top/build/in-root.sh" "$root" /bin/sh -c "$rest" ;;
        USER) user=$rest ;;
        WORKDIR) workdir=$rest; mkdir -p "$root$workdir" ;;
        CMD) cmd=$(python3 -c 'import json, shlex, sys; print(shlex.join(json.loads(sys.argv[1])))' "$rest") ;;
        *) echo "recipe.sh: $verb is not carried out here" >&2; exit 1 ;;
    esac
done <<<"$instructions"
printf 'USER=%s\nWORKDIR=%s\nCMD=%s\n' "$user" "$workdir" "$cmd" >"$root/.recipe"
