"""The package's version, in a leaf so every layer can show it without importing the face."""

__version__ = "0.1.0"
