"""The inbound path: sources, one verifier per provider, and ingest."""
