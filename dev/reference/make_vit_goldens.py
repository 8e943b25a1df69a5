#!/usr/bin/env python3
"""Independent reference for Headwise's ViT family: tiny random Hugging Face ViT checkpoints, test images, and what
Hugging Face's ViTImageProcessor and ViTModel / ViTForImageClassification compute for them.

Writes, for each case under <out>/<case>/:
  config.json                  HF ViTConfig (with id2label for the classifier case)
  preprocessor_config.json     HF ViTImageProcessor settings
  model.safetensors            weights under HF's names (written by hand, as make_goldens.py does)
  image.png                    a 45x27 RGB test image (PIL-written): resized down in width, up in height
  image_exact.png              an RGB image at the model's own size (no resize: the pixels must match to 1e-6)
  image_gray.png               a grayscale image (converted to RGB, as PIL's convert("RGB") does)
  image_truncated.png          the first half of image.png (unreadable)
  expected.safetensors         F32 pixels (resized, exact, gray, and image.png with filters 1/3/4/5) [1,3,H,W]; logits or hidden states of each; layer-0
                               pattern [1,NH,T,T]; an input at another size (interp_pixels) with its output and
                               interpolated position embeddings (interp_pos [1,T',C])
  vit.json                     what is in there (not golden.json: GoldenTests reads those as text-model cases), tolerances, notes

The forward is our own short re-implementation of HF's modeling_vit.py (comments quote the HF lines); the
preprocessing follows image_processing_vit.py: PIL resize (resample from preprocessor_config, bilinear = 2) of the uint8
image, then image * rescale_factor (float64, cast to float32), then (image - mean) / std in float32.

Usage:
  /usr/bin/python3 dev/reference/make_vit_goldens.py --out tests/goldens
"""
import argparse
import io
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import write_safetensors  # noqa: E402  (the hand-written safetensors writer)

torch.set_num_threads(1)


def vit_weights(cfg, rng, prefix, classifier, pooler):
    C, F_, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    p, ch = cfg["patch_size"], cfg["num_channels"]
    P = (cfg["image_size"] // p) ** 2

    def r(*shape, s=0.2):
        return torch.tensor(rng.standard_normal(shape).astype(np.float32) * s)

    W = {
        prefix + "embeddings.cls_token": r(1, 1, C, s=1.0),
        prefix + "embeddings.position_embeddings": r(1, P + 1, C, s=1.0),
        prefix + "embeddings.patch_embeddings.projection.weight": r(C, ch, p, p, s=0.1),
        prefix + "embeddings.patch_embeddings.projection.bias": r(C, s=0.1),
    }
    for l in range(L):
        b = f"{prefix}encoder.layer.{l}."
        for name in ("query", "key", "value"):
            W[b + f"attention.attention.{name}.weight"] = r(C, C)
            if cfg["qkv_bias"]:
                W[b + f"attention.attention.{name}.bias"] = r(C, s=0.1)
        W[b + "attention.output.dense.weight"] = r(C, C)
        W[b + "attention.output.dense.bias"] = r(C, s=0.1)
        W[b + "intermediate.dense.weight"] = r(F_, C)
        W[b + "intermediate.dense.bias"] = r(F_, s=0.1)
        W[b + "output.dense.weight"] = r(C, F_)
        W[b + "output.dense.bias"] = r(C, s=0.1)
        for ln in ("layernorm_before", "layernorm_after"):
            W[b + ln + ".weight"] = 1 + r(C, s=0.1)
            W[b + ln + ".bias"] = r(C, s=0.1)
    W[prefix + "layernorm.weight"] = 1 + r(C, s=0.1)
    W[prefix + "layernorm.bias"] = r(C, s=0.1)
    if pooler:
        W["pooler.dense.weight"] = r(C, C)
        W["pooler.dense.bias"] = r(C, s=0.1)
    if classifier:
        n = len(cfg["id2label"])
        W["classifier.weight"] = r(n, C, s=0.5)
        W["classifier.bias"] = r(n, s=0.1)
    return W


def interpolate_pos_encoding(pos, grid_h, grid_w):
    """ViTEmbeddings.interpolate_pos_encoding: pos (1, P+1, C) -> (1, grid_h*grid_w + 1, C)."""
    num_positions = pos.shape[1] - 1
    # class_pos_embed = self.position_embeddings[:, :1]; patch_pos_embed = self.position_embeddings[:, 1:]
    class_pos_embed, patch_pos_embed = pos[:, :1], pos[:, 1:]
    dim = pos.shape[-1]
    s = int(num_positions ** 0.5)
    # patch_pos_embed.reshape(1, sqrt_num_positions, sqrt_num_positions, dim).permute(0, 3, 1, 2)
    patch_pos_embed = patch_pos_embed.reshape(1, s, s, dim).permute(0, 3, 1, 2)
    # nn.functional.interpolate(patch_pos_embed, size=(new_height, new_width), mode="bicubic", align_corners=False)
    patch_pos_embed = F.interpolate(patch_pos_embed, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat((class_pos_embed, patch_pos_embed), dim=1)


def vit_forward(cfg, W, prefix, pixels, classifier):
    """Returns (output, layer-0 pattern, position embeddings used). output: logits (B, labels) or last_hidden_state."""
    C, NH, p = cfg["hidden_size"], cfg["num_attention_heads"], cfg["patch_size"]
    HD = C // NH
    eps = cfg["layer_norm_eps"]
    B, _, H, Wd = pixels.shape
    # embeddings = self.projection(pixel_values).flatten(2).transpose(1, 2)
    x = F.conv2d(pixels, W[prefix + "embeddings.patch_embeddings.projection.weight"],
                 W[prefix + "embeddings.patch_embeddings.projection.bias"], stride=p).flatten(2).transpose(1, 2)
    # embeddings = torch.cat((cls_tokens, embeddings), dim=1)
    x = torch.cat((W[prefix + "embeddings.cls_token"].expand(B, -1, -1), x), dim=1)
    pos = W[prefix + "embeddings.position_embeddings"]
    if x.shape[1] != pos.shape[1] or H != Wd:
        # embeddings = embeddings + self.interpolate_pos_encoding(embeddings, height, width)
        pos = interpolate_pos_encoding(pos, H // p, Wd // p)
    x = x + pos
    T = x.shape[1]
    pattern0 = None
    for l in range(cfg["num_hidden_layers"]):
        b = f"{prefix}encoder.layer.{l}."

        def lin(h, name):
            return F.linear(h, W[b + name + ".weight"], W.get(b + name + ".bias"))

        # self.layernorm_before(hidden_states)  # in ViT, layernorm is applied before self-attention
        h = F.layer_norm(x, (C,), W[b + "layernorm_before.weight"], W[b + "layernorm_before.bias"], eps)
        q, k, v = (lin(h, "attention.attention." + n).view(B, T, NH, HD).permute(0, 2, 1, 3) for n in ("query", "key", "value"))
        # attn_weights = torch.matmul(query, key.transpose(-1, -2)) * scaling; softmax (no mask: is_causal = False)
        a = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * HD ** -0.5, dim=-1)
        if l == 0:
            pattern0 = a
        z = torch.matmul(a, v).permute(0, 2, 1, 3).reshape(B, T, C)
        # hidden_states = attention_output + hidden_states
        x = lin(z, "attention.output.dense") + x
        # layer_output = self.layernorm_after(hidden_states); self.intermediate(...); self.output(layer_output, hidden_states)
        h = F.layer_norm(x, (C,), W[b + "layernorm_after.weight"], W[b + "layernorm_after.bias"], eps)
        x = lin(F.gelu(lin(h, "intermediate.dense")), "output.dense") + x
    # sequence_output = self.layernorm(sequence_output)
    x = F.layer_norm(x, (C,), W[prefix + "layernorm.weight"], W[prefix + "layernorm.bias"], eps)
    if classifier:
        # logits = self.classifier(sequence_output[:, 0, :])
        return F.linear(x[:, 0, :], W["classifier.weight"], W["classifier.bias"]), pattern0, pos
    return x, pattern0, pos


def preprocess(png_bytes, pp):
    """ViTImageProcessor: resize (PIL), rescale, normalize; (1, 3, H, W) float32."""
    im = Image.open(io.BytesIO(png_bytes)).convert("RGB")
    if pp.get("do_resize", True):
        size = pp.get("size", {"height": 224, "width": 224})
        # image.resize((width, height), resample=resample, reducing_gap=None)
        im = im.resize((size["width"], size["height"]), resample=pp.get("resample", 2), reducing_gap=None)
    a = np.array(im)  # (H, W, 3) uint8
    if pp.get("do_rescale", True):
        a = (a.astype(np.float64) * pp.get("rescale_factor", 1 / 255)).astype(np.float32)
    else:
        a = a.astype(np.float32)
    if pp.get("do_normalize", True):
        mean = np.array(pp.get("image_mean", [0.5, 0.5, 0.5]), dtype=np.float32)
        std = np.array(pp.get("image_std", [0.5, 0.5, 0.5]), dtype=np.float32)
        a = (a - mean) / std
    return torch.tensor(a.transpose(2, 0, 1)[None].copy())


def png(array, mode):
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_images(rng, size):
    """A smooth gradient with noise (resizing must average it), 45 wide x 27 high; one at the model's size; a gray one."""
    yy, xx = np.mgrid[0:27, 0:45]
    rgb = np.stack([xx * 5.5, yy * 9.0, (xx + yy) * 3.5], axis=-1) + rng.uniform(-30, 30, (27, 45, 3))
    img = png(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    exact = png(rng.randint(0, 256, (size, size, 3)).astype(np.uint8), "RGB")
    gray = png(rng.randint(0, 256, (20, 20)).astype(np.uint8), "L")
    return img, exact, gray


CASES = {
    # ViTForImageClassification: "vit." prefix, classifier, qkv biases, ImageNet mean/std, bilinear resize
    "vit_cls": dict(
        seed=1701, classifier=True, pooler=False, prefix="vit.",
        config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32,
                    patch_size=8, num_channels=3, qkv_bias=True, hidden_act="gelu", layer_norm_eps=1e-12,
                    architectures=["ViTForImageClassification"],
                    id2label={"0": "tabby cat", "1": "sports car", "2": "teapot", "3": "lighthouse", "4": "volcano"},
                    label2id={"tabby cat": 0, "sports car": 1, "teapot": 2, "lighthouse": 3, "volcano": 4}),
        preprocessor=dict(do_resize=True, size={"height": 32, "width": 32}, resample=2, do_rescale=True,
                          rescale_factor=1 / 255, do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                          image_std=[0.229, 0.224, 0.225], image_processor_type="ViTImageProcessor"),
        interp=(48, 40)),
    # ViTModel: no prefix, a pooler (ignored), no qkv bias; the processor's defaults (mean = std = 0.5) but its size
    "vit_model": dict(
        seed=1702, classifier=False, pooler=True, prefix="",
        config=dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=48, image_size=16,
                    patch_size=4, num_channels=3, qkv_bias=False, hidden_act="gelu", layer_norm_eps=1e-6,
                    architectures=["ViTModel"]),
        preprocessor=dict(size={"height": 16, "width": 16}, image_processor_type="ViTImageProcessor"),
        interp=(24, 24)),
}


def make_case(out, name, case):
    rng = np.random.RandomState(case["seed"])
    cfg = dict(model_type="vit", **case["config"])
    W = vit_weights(cfg, rng, case["prefix"], case["classifier"], case["pooler"])
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump(case["preprocessor"], f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), {k: (v, "F32") for k, v in W.items()})

    img, exact, gray = test_images(rng, cfg["image_size"])
    for fname, data in (("image.png", img), ("image_exact.png", exact), ("image_gray.png", gray),
                        ("image_truncated.png", img[: len(img) // 2])):
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)

    expected = {}
    out_name = "logits" if case["classifier"] else "hidden"
    for key, data in (("resized", img), ("exact", exact), ("gray", gray)):
        px = preprocess(data, case["preprocessor"])
        y, pat, _ = vit_forward(cfg, W, case["prefix"], px, case["classifier"])
        expected[f"pixels_{key}"] = px
        expected[f"{out_name}_{key}"] = y
        if key == "resized":
            expected["pattern0_resized"] = pat
    # every other PIL filter HF's resample may name (1 lanczos, 3 bicubic, 4 box, 5 hamming), on the same image
    for f in (1, 3, 4, 5):
        expected[f"pixels_filter{f}"] = preprocess(img, dict(case["preprocessor"], resample=f))
    ih, iw = case["interp"]
    ipx = torch.tensor(rng.standard_normal((1, 3, ih, iw)).astype(np.float32))
    y, pat, pos = vit_forward(cfg, W, case["prefix"], ipx, case["classifier"])
    expected["interp_pixels"] = ipx
    expected[f"{out_name}_interp"] = y
    expected["interp_pos"] = pos
    expected["pattern0_interp"] = pat
    write_safetensors(os.path.join(d, "expected.safetensors"), {k: (v, "F32") for k, v in expected.items()})
    golden = dict(
        case=name, output=out_name, tolerance=1e-4, pixel_tolerance=1e-6,
        interp_size=[ih, iw],
        notes="Pixels: PIL " + Image.__version__ + " resize of the uint8 image, rescale, normalize (HF ViTImageProcessor). "
              "Forward: HF modeling_vit.py re-implemented (pre-LayerNorm, bidirectional attention, GELU, CLS classifier). "
              "interp_*: an input of another size; positions interpolated bicubically (align_corners=False) as "
              "ViTEmbeddings.interpolate_pos_encoding does.")
    with open(os.path.join(d, "vit.json"), "w") as f:
        json.dump(golden, f, indent=2)
    print(f"{name}: {out_name} {tuple(expected[out_name + '_resized'].shape)}, pattern {tuple(expected['pattern0_resized'].shape)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/goldens")
    ap.add_argument("--case", action="append")
    args = ap.parse_args()
    for name, case in CASES.items():
        if not args.case or name in args.case:
            make_case(args.out, name, case)


if __name__ == "__main__":
    main()
