"""Core of the predict function: decoding, model, classification, result records (no fdk here)."""
