"""tac_jax: the JAX backend (TPU research). It registers only what it can already do."""

__all__: list[str] = []
