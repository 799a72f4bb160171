"""Prints criterion medians (from <target>/criterion/*/new/estimates.json) with budgets:
handler CPU (shared/benches/ingest.rs) and the bot decision (shared/benches/bot_decide.rs)."""

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


# Bot decision per inbound message (shared/benches/bot_decide.rs): issue 13's goal, a keyword
# bot with 400 keywords decides in <= 50 µs per message. Each row is the median over a mix
# of ~100-character messages (matching early, late, not at all, one-keyword messages).
BOT_BUDGETS_US = {
    "bot_decide_contains": (50.0, "400 keywords `contains` + regex, first-message, outside-hours bots"),
    "bot_decide_starts_with": (50.0, "the same with `starts_with`"),
    "bot_decide_exact": (50.0, "the same with `exact`"),
    "bot_decide_waiting": (50.0, "a bot waiting at its question: id, number, title, exit keyword, other"),
    "bot_compile_400_keywords/contains": (None, "`CompiledBot::new`, once per bot version"),
}


def median_us(root: pathlib.Path, name: str) -> float | None:
    path = root / name / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["median"]["point_estimate"] / 1000.0


def shown(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.1f} µs"


def bot_table(root: pathlib.Path) -> bool:
    """Prints the bot decision table; whether a figure is missing or over its goal."""
    failed = False
    print("\nBot decision per inbound message (`decide`, bots compiled once), criterion median\n")
    print("| bench | p50 | goal | result |")
    print("|---|---|---|---|")
    for name, (goal, what) in BOT_BUDGETS_US.items():
        median = median_us(root, name)
        if median is None:
            print(f"| {name} ({what}) | missing | | FAIL |")
            failed = True
            continue
        if goal is None:
            print(f"| {name} ({what}) | {shown(median)} | — | — |")
            continue
        ok = median <= goal
        failed |= not ok
        print(f"| {name} ({what}) | {shown(median)} | <= {goal:.0f} µs | {'pass' if ok else 'FAIL'} |")
    return failed


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
    failed |= bot_table(root)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
