"""The module framework: what a module is (`base`), how its process runs (`runtime`, `entry`),
the protocol it speaks with the master (`protocol`), trial windows (`trial`) and how module
folders are found (`discovery`). Plugins in `rpi_logger.modules` build on it; `core` drives it.
The framework imports nothing from `core` or from any plugin."""
