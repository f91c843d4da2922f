"""GPS: an NMEA 0183 receiver on a UART (or USB), one row per fix on the host clock."""
