"""accelsim: a cycle-level simulator of CNN accelerators that exploit the values flowing through a network."""

__version__ = "0.1.0"
