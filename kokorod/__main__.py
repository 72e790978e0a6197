"""`python -m kokorod` is `kokorod`."""

from kokorod.ctl.cli import main

raise SystemExit(main())
