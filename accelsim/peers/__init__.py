"""Peer models that accelsim is checked against (run out of process; see each module)."""
