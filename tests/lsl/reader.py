"""Another lab program reading our outlets: a pylsl inlet in its own process.

``python -m tests.lsl.reader OUT.json NAME [NAME...]`` resolves each stream by name, prints
"ready" once all are open, then pulls until SIGTERM/stdin EOF and writes
``{name: {"info": xml, "samples": [[timestamp, [values...]], ...]}}`` to OUT.json.
"""

from __future__ import annotations

import json
import select
import sys

from tests.lsl import netns

netns.assert_contained()

import pylsl  # noqa: E402  (after the containment check, on purpose)


def main() -> None:
    out, names = sys.argv[1], sys.argv[2:]
    inlets = {}
    for name in names:
        found = pylsl.resolve_byprop("name", name, timeout=30)
        if not found:
            sys.exit(f"stream {name} not found")
        inlet = pylsl.StreamInlet(found[0], max_buflen=60)
        inlet.open_stream(timeout=10)
        inlets[name] = inlet
    print("ready", flush=True)
    result = {n: {"info": i.info(timeout=10).as_xml(), "samples": []} for n, i in inlets.items()}
    while True:
        for name, inlet in inlets.items():
            values, stamps = inlet.pull_chunk(timeout=0.0)
            result[name]["samples"].extend([t, v] for t, v in zip(stamps, values, strict=True))
        if select.select([sys.stdin], [], [], 0.01)[0] and not sys.stdin.readline():
            break  # stdin closed: done
    for name, inlet in inlets.items():  # what is still buffered
        values, stamps = inlet.pull_chunk(timeout=0.5)
        result[name]["samples"].extend([t, v] for t, v in zip(stamps, values, strict=True))
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
