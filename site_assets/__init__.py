"""Static assets that make asv's published site work without network access."""
