"""Models by name: the registry (``register_model``, ``create_model``, ``list_models``), the HW3 models,
the ImageNet backbones and their weight files, the CIFAR-stem ResNets MedMNIST trains from scratch
(``resnets``), and what a model costs (``info``). Importing this package registers the built-in models; that
imports no torch (a builder imports it when it builds: ``transfer`` for the backbones)."""

from xraybench.models import backbones, hw3, resnets  # noqa: F401
from xraybench.models.registry import create_model, is_model, list_models, model_options, register_model

__all__ = ["create_model", "is_model", "list_models", "model_options", "register_model"]
