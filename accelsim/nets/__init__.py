"""Networks: the graph IR, workload files, weight loaders and datasets. `load` is the one entry point."""

from accelsim.nets.datasets import load_dataset
from accelsim.nets.loaders import load_network as load

__all__ = ["load", "load_dataset"]
