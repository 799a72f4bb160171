"""Prints criterion medians (from <target>/criterion/*/new/estimates.json) with budgets."""

import json
import pathlib
import sys

BUDGETS_US = {
    "whatsapp_text": 200.0,
    "messenger_text": 200.0,
    "wechat_text_xml": 200.0,
    "whatsapp_batch_50": None,
    "outbound_send_text": None,
    "media_sniff_jpeg": None,
}


def main() -> int:
    root = pathlib.Path(sys.argv[1]) / "criterion"
    failed = False
    print("\nHandler CPU without I/O (ingest: verify + parse + normalize; outbound; media sniffing), criterion median\n")
    print("| bench | p50 | budget | result |")
    print("|---|---|---|---|")
    for name, budget in BUDGETS_US.items():
        path = root / name / "new" / "estimates.json"
        if not path.exists():
            print(f"| {name} | missing | | FAIL |")
            failed = True
            continue
        median_us = json.loads(path.read_text())["median"]["point_estimate"] / 1000.0
        if name == "outbound_send_text":
            print(f"| {name} (outbound: parse, window, provider body, answer) | {median_us:.1f} µs | — | — |")
            continue
        if name == "media_sniff_jpeg":
            print(f"| {name} (media: decide a 20 KB JPEG by content, from memory) | {median_us:.1f} µs | — | — |")
            continue
        if budget is None:
            print(f"| {name} | {median_us:.1f} µs ({median_us / 50:.1f} µs/message) | — | — |")
            continue
        ok = median_us <= budget
        failed |= not ok
        print(f"| {name} | {median_us:.1f} µs | <= {budget:.0f} µs | {'pass' if ok else 'FAIL'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
