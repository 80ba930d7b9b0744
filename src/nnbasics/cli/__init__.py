"""The command-line entry points (each a thin shell over the library)."""
