"""One file per stream kind: each turns the realtime API's data classes into our typed,
immutable samples on the host clock (`rpi_logger.io.clock_map.ClockMap`)."""
