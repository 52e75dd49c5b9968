from edge_genre.cli import main

raise SystemExit(main())
