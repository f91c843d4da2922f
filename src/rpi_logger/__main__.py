"""`python -m rpi_logger` runs the command line."""

from rpi_logger.cli import main

raise SystemExit(main())
