"""DRT (ISO 17488 detection response task) on a Red Scientific sDRT, on the host clock."""
