"""`python -m imcflow` is the `imcflow` command."""
from imcflow.cli import main

raise SystemExit(main())
