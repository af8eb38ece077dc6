"""Models: loading and downloading them, the catalog and library as shown, GGML conversion."""
