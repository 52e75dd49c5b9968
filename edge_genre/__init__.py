"""edge-genre: music-genre classification on small devices.

The top-level packages install as subpackages of this one name (see pyproject.toml):
``edge_genre.edge`` (the light runtime), ``edge_genre.train``, ``edge_genre.export``,
``edge_genre.benchmarks`` and ``edge_genre.serve``. Importing this package imports none of them.
"""
__version__ = "0.1.0"
