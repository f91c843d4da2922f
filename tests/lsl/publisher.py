"""A stand-in for another lab program: an LSL outlet of a known signal (run as a process).

``python -m tests.lsl.publisher NAME RATE SECONDS [SOURCE_ID]`` pushes at RATE Hz for SECONDS:
each sample's time stamp is the publisher's own `local_clock()` at the push, and its values
are ``[t, sin(2*pi*t)]`` of that same time, so a recorder can check each row's mapped time
against its content. Prints "ready" once the outlet exists.
"""

from __future__ import annotations

import math
import sys
import time

from tests.lsl import netns

netns.assert_contained()

import pylsl  # noqa: E402  (after the containment check, on purpose)


def main() -> None:
    name, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    source_id = sys.argv[4] if len(sys.argv) > 4 else f"test-{name}"
    info = pylsl.StreamInfo(name, "Test", 2, rate, "double64", source_id)
    channels = info.desc().append_child("channels")
    for label, unit in (("t", "s"), ("sine", "")):
        ch = channels.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
    outlet = pylsl.StreamOutlet(info)
    print("ready", flush=True)
    period = 1.0 / rate
    start = pylsl.local_clock()
    k = 0
    while True:
        due = start + k * period
        if due - start >= seconds:
            break
        wait = due - pylsl.local_clock()
        if wait > 0:
            time.sleep(wait)
        t = pylsl.local_clock()
        outlet.push_sample([t, math.sin(2 * math.pi * t)], t)
        k += 1
    del outlet


if __name__ == "__main__":
    main()
