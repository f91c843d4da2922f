"""Content of the simulated devices (design.md: Simulated devices), shared by every plugin that
simulates one: the barcodes and the scene picture. Imports nothing above `io`."""
