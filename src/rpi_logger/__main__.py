"""`python -m rpi_logger` runs the command line."""

try:
    from rpi_logger.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command line is still loading: nothing started yet
    raise SystemExit(130) from None

raise SystemExit(main())
