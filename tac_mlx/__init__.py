"""tac_mlx: the MLX backend (Apple silicon research). It registers only what it can already do."""

__all__: list[str] = []
