"""``python -m tac_core`` runs the ``tac`` command line."""

from tac_core.cli.main import main

raise SystemExit(main())
