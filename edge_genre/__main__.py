"""`python -m edge_genre`: the same command line as `edge-genre`."""
from edge_genre.cli import main

raise SystemExit(main())
