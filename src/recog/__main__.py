"""`python -m recog` (and `torchrun -m recog`) runs the CLI."""

from recog.cli import main

raise SystemExit(main())
