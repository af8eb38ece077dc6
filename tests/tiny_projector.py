"""A tiny random-weight LLaVA-1.5 style multimodal projector ("mmproj") GGUF for fast tests.

`write_tiny_projector` writes a CLIP vision encoder (32x32 images, 8x8 patches, 32 dims,
2 blocks, 4 heads) followed by the two-layer MLP projector (`clip.projector_type = "mlp"`:
mm.0 -> GELU -> mm.2) whose output width matches the tiny text model of `tiny_model.py`
(64). llama.cpp's mtmd library loads it in milliseconds and turns any image into 16
embedding tokens, so tests can drive the real image path (bitmap, tokenize, eval) without
a multi-gigabyte download. The embeddings are noise; tests assert on structure only.

Layout follows tools/mtmd/clip.cpp of the bundled llama.cpp. Its pitfalls:
- the LLaVA graph runs only the first `block_count - 1` blocks (it takes the penultimate
  layer's features), so `block_count` must be at least 2 for the encoder to do anything;
- `mm.2.weight` is required although the loader marks it optional: the output width is
  read from it, and mtmd refuses a projector whose width differs from the text model's;
- `clip.vision.projection_dim` is a required key, and image_mean/image_std need 3 values;
- numpy shapes are the PyTorch ones (out, in); GGUF stores the dimensions reversed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter

IMAGE_SIZE = 32
PATCH_SIZE = 8
N_EMBD = 32
N_HEAD = 4
N_FF = 64
N_LAYER = 2
N_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2
N_IMAGE_TOKENS = N_PATCHES  # one embedding per patch; the class token is dropped
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def write_tiny_projector(
    path: Path, *, n_embd_text: int = 64, seed: int = 0, without: tuple[str, ...] = ()
) -> Path:
    """Write the tiny projector to `path` and return it.

    Args:
        n_embd_text: the text model's embedding width, which the projector outputs.
        seed: the seed of the random weights.
        without: tensors to leave out, for the checks that refuse a broken projector.
    """
    writer = GGUFWriter(str(path), "clip")
    _add_metadata(writer, n_embd_text)
    for name, data in _tensors(np.random.default_rng(seed), n_embd_text).items():
        if name not in without:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_metadata(writer: GGUFWriter, n_embd_text: int) -> None:
    writer.add_name("tiny-llava-projector")
    writer.add_file_type(0)  # ALL_F32
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", False)  # CLIP's quick GELU in the encoder blocks
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", N_EMBD)
    writer.add_uint32("clip.vision.feed_forward_length", N_FF)
    writer.add_uint32("clip.vision.block_count", N_LAYER)
    writer.add_uint32("clip.vision.attention.head_count", N_HEAD)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_uint32("clip.vision.projection_dim", n_embd_text)
    writer.add_array("clip.vision.image_mean", CLIP_MEAN)
    writer.add_array("clip.vision.image_std", CLIP_STD)


def _tensors(rng: np.random.Generator, n_embd_text: int) -> dict[str, np.ndarray]:
    """The tensors by GGUF name, in numpy (PyTorch) shapes, all float32."""

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.float32)

    tensors = {
        "v.class_embd": weight(N_EMBD),
        "v.patch_embd.weight": weight(N_EMBD, 3, PATCH_SIZE, PATCH_SIZE),
        "v.position_embd.weight": weight(N_PATCHES + 1, N_EMBD),
        "v.pre_ln.weight": ones(N_EMBD),
        "v.pre_ln.bias": zeros(N_EMBD),
    }
    for i in range(N_LAYER):
        blk = f"v.blk.{i}"
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensors[f"{blk}.{part}.weight"] = weight(N_EMBD, N_EMBD)
            tensors[f"{blk}.{part}.bias"] = zeros(N_EMBD)
        for norm in ("ln1", "ln2"):
            tensors[f"{blk}.{norm}.weight"] = ones(N_EMBD)
            tensors[f"{blk}.{norm}.bias"] = zeros(N_EMBD)
        tensors[f"{blk}.ffn_up.weight"] = weight(N_FF, N_EMBD)  # fc1
        tensors[f"{blk}.ffn_up.bias"] = zeros(N_FF)
        tensors[f"{blk}.ffn_down.weight"] = weight(N_EMBD, N_FF)  # fc2
        tensors[f"{blk}.ffn_down.bias"] = zeros(N_EMBD)
    tensors["mm.0.weight"] = weight(n_embd_text, N_EMBD)
    tensors["mm.0.bias"] = zeros(n_embd_text)
    tensors["mm.2.weight"] = weight(n_embd_text, n_embd_text)
    tensors["mm.2.bias"] = zeros(n_embd_text)
    return tensors
