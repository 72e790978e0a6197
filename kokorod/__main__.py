"""`python -m kokorod` is `kokorod`."""

from kokorod.cli import main

raise SystemExit(main())
