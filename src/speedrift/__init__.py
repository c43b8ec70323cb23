"""speedrift: a control plane for an AI dark factory over many git repositories."""

__version__ = "0.1.0"
