"""xraybench: a report-generating benchmark suite for chest X-ray classification.

The model registry is also reachable from here, timm-style: ``xraybench.create_model(name, ...)``,
``xraybench.list_models("hw3*")`` and ``@xraybench.register_model`` (imported on first use, so that
``import xraybench`` stays light)."""

__version__ = "0.1.0"

_REGISTRY = ("create_model", "list_models", "register_model")


def __getattr__(name: str):
    if name in _REGISTRY:
        from xraybench.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'xraybench' has no attribute {name!r}")
