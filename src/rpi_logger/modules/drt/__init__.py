"""DRT (ISO 17488 detection response task): protocol handling so far; the module (config.txt,
trials, files) is not built yet, so discovery does not list it."""
