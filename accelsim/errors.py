"""Exceptions a user can act on: each names what was wrong and what was expected."""


class AccelsimError(Exception):
    """Base class of every error accelsim raises on purpose (the CLI prints these without a traceback)."""


class ConfigError(AccelsimError, ValueError):
    """A configuration file, key or value is malformed or out of range."""


class NetworkError(AccelsimError, ValueError):
    """A network graph is malformed (unknown layer type, dangling blob, inconsistent shape)."""


class WeightError(AccelsimError, ValueError):
    """A weight file is unreadable or does not match its graph (missing, extra or wrongly shaped tensor)."""


class DatasetError(AccelsimError, ValueError):
    """An image set is empty, unreadable or does not match the network's input."""


class InternalError(Exception):
    """A broken internal contract: a bug in accelsim, not a user error (the CLI prints its traceback)."""


class MissingDependencyError(AccelsimError, ImportError):
    """An optional dependency (torch, onnx, dask) is needed for this feature but not installed."""


def require(module: str, extra: str, feature: str):
    """Import an optional module or raise a MissingDependencyError naming the pip extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError(
            f"{feature} needs the optional dependency '{module}', which is not installed; "
            f"install it with: pip install 'accelsim[{extra}]'"
        ) from exc
