"""Built-in model definitions; importing this package registers them."""

from xraybench.models import backbones, hw3  # noqa: F401
