"""The node's own parts, usable offline: config, home (key, genesis), ingest, metrics, logs."""
