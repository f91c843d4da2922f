"""modules/lsl: other programs' and machines' streams, through the Lab Streaming Layer."""
