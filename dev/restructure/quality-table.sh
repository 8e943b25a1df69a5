#!/usr/bin/env bash
# Regenerates the quality table of docs/restructure.md ("The quality table"): every restructuring of issue #12 on
# stories260K and on the demo model (models/demo), its held-out NLL before and after healing, the heal's steps and time.
#
#   bash dev/restructure/quality-table.sh [OUT_DIR]          (default /tmp/headwise-quality; minutes; runs under nice -n 10)
#
# Texts (all in the repository, none shared between roles):
#   conversions calibrate on the built-in calibration text (src/Headwise/Restructure/CalibrationText.cs);
#   heal distils on docs/examples/texts/stories.txt (its own last tenth is heal's held-out tail, unused here);
#   the NLL in the table is `headwise eval --text-file docs/examples/texts/story.txt`, a story in neither text.
# Prints the table's rows as Markdown on stdout; progress and the raw JSON go to OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/headwise-quality}
STEPS=${STEPS:-200}
LR=${LR:-3e-4}
mkdir -p "$OUT"
dotnet build src/Headwise.Cli -c Release -nologo -v quiet >/dev/null
hw() { nice -n 10 dotnet src/Headwise.Cli/bin/Release/net10.0/Headwise.Cli.dll "$@"; }
HEAL_TEXT=docs/examples/texts/stories.txt
NLL_TEXT=docs/examples/texts/story.txt
S=../shared/models/stories260K

nll() { hw eval --model "$1" "${@:2}" --text-file "$NLL_TEXT" --json | jq -r '.mean_nll'; }

kv() { hw info --model "$1" "${@:2}" --json | jq -r '.kv_cache_bytes_per_token'; }

# row NAME DIR TEACHER [model args...]: KV bytes/token, NLL before, heal, NLL after (or why heal refused)
row() {
  local name=$1 dir=$2 teacher=$3; shift 3
  local before after secs bytes
  bytes=$(kv "$dir" "$@")
  before=$(nll "$dir" "$@")
  rm -rf "$dir-healed"
  if ! hw heal --model "$dir" --teacher "$teacher" "$@" --text-file "$HEAL_TEXT" --steps "$STEPS" --lr "$LR" --out "$dir-healed" --json \
    > "$dir-heal.json" 2> "$dir-heal.log"; then
    printf '| %s | %s | %.3f | heal refused: %s | | |\n' "$name" "$bytes" "$before" "$(tail -1 "$dir-heal.log")"
    return
  fi
  secs=$(jq -r '.seconds' "$dir-heal.json")
  after=$(nll "$dir-healed" "$@")
  printf '| %s | %s | %.3f | %.3f | %d | %.0f |\n' "$name" "$bytes" "$before" "$after" "$STEPS" "$secs"
}

echo "| model | conversion | KV bytes/token | NLL before healing | after | heal steps | heal seconds |" >&2
TOK=(--tokenizer $S/tok512.bin)
printf '| stories260K | original | %s | %.3f | | | |\n' "$(kv $S/stories260K.bin "${TOK[@]}")" "$(nll $S/stories260K.bin "${TOK[@]}")"
for f in 1 0.5 0.25 0.125; do
  d=$OUT/stories-mla-$f; rm -rf "$d"
  hw convert mla --model $S/stories260K.bin "${TOK[@]}" --kv-fraction $f --out "$d" 2> "$d.log" >/dev/null
  row "stories260K: MLA, kv fraction $f" "$d" $S/stories260K.bin "${TOK[@]}"
done
for g in 2 1; do
  for m in mean fuse; do
    d=$OUT/stories-gqa-$g-$m; rm -rf "$d"
    hw convert gqa --model $S/stories260K.bin "${TOK[@]}" --kv-heads $g --method $m --out "$d" 2> "$d.log" >/dev/null
    row "stories260K: GQA $g of 4 kv heads, $m" "$d" $S/stories260K.bin "${TOK[@]}"
  done
done
for n in 4 10 20; do   # 10%, 25%, 50% of its 40 heads, removed (Headwise's per-layer head counts: the KV bytes drop)
  d=$OUT/stories-prune-$n; rm -rf "$d"
  hw convert prune --model $S/stories260K.bin "${TOK[@]}" --by-importance $n --format headwise --out "$d" 2> "$d.log" >/dev/null
  row "stories260K: prune $n of 40 heads by importance" "$d" $S/stories260K.bin "${TOK[@]}"
done
for g in 3-4 1-2,3-4 1-4; do   # attention sharing [EchoAtt]; heal trains shared models
  d=$OUT/stories-share-$g; rm -rf "$d"
  hw convert share-attention --model $S/stories260K.bin "${TOK[@]}" --groups $g --out "$d" 2> "$d.log" >/dev/null
  row "stories260K: attention shared in layers $g" "$d" $S/stories260K.bin "${TOK[@]}"
done

D=models/demo
printf '| demo | original | %s | %.3f | | | |\n' "$(kv $D)" "$(nll $D)"
for f in 1 0.5 0.25 0.125; do   # GPT-2 → MLA (no rotary key: the latent holds keys and values); heal trains it in a GPT-2 block
  d=$OUT/demo-mla-$f; rm -rf "$d"
  hw convert mla --model $D --kv-fraction $f --out "$d" 2> "$d.log" >/dev/null
  row "demo: MLA, kv fraction $f" "$d" $D
done
for n in 2 4 8; do     # 12.5%, 25%, 50% of its 16 heads (10% rounds to 2), removed
  d=$OUT/demo-prune-$n; rm -rf "$d"
  hw convert prune --model $D --by-importance $n --format headwise --out "$d" 2> "$d.log" >/dev/null
  row "demo: prune $n of 16 heads by importance" "$d" $D
done
for g in 2 1; do
  for m in mean fuse; do
    d=$OUT/demo-gqa-$g-$m; rm -rf "$d"
    if hw convert gqa --model $D --kv-heads $g --method $m --out "$d" 2> "$d.log" >/dev/null; then
      row "demo: GQA $g of 4 kv heads, $m" "$d" $D
    else
      printf '| demo: GQA %s of 4 kv heads, %s | | refused: %s | | | |\n' "$g" "$m" "$(tail -1 "$d.log")"
    fi
  done
done
