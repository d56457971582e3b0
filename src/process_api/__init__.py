"""process-api: programs published as web processes through OGC API - Processes."""

__version__ = "0.1.0"
