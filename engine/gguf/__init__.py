"""Reading GGUF files without loading their weights: the header and tensor table
(`meta`), and the checks that refuse a file llama.cpp would crash on (`checks`)."""

from engine.gguf.checks import check_loadable, check_projector
from engine.gguf.meta import GGUFHeader, TensorEntry, model_info, quant_name, read_header, sniff_container

__all__ = [
    "GGUFHeader",
    "TensorEntry",
    "check_loadable",
    "check_projector",
    "model_info",
    "quant_name",
    "read_header",
    "sniff_container",
]
