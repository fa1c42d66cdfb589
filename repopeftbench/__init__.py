"""RepoPeftBench: repository-adapted code model benchmark builder and harness."""
__version__ = "0.1.0"
