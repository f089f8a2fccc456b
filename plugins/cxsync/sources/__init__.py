"""Provider sources: API pages in, normalized records out. One module per provider."""
