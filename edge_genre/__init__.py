"""edge-genre: music-genre classification on small devices.

The rooms install as subpackages of this one name (see pyproject.toml):
``edge_genre.edge`` (the light runtime), ``edge_genre.train``, ``edge_genre.export`` and
``edge_genre.benchmarks``. Importing this package imports none of them.
"""
__version__ = "0.1.0"
