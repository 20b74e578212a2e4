"""Small shared helpers (atomic file writes, environment facts)."""
