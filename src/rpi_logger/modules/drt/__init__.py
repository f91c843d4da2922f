"""DRT (ISO 17488 detection response task) on a Red Scientific sDRT or wDRT, on the host clock."""
