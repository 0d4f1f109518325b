"""tac_torch: the PyTorch backend (CPU and CUDA; the contest path).

Importing this package does not import torch; its modules do.
"""

__all__: list[str] = []
