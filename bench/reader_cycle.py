"""One `reader` poll cycle as a command, for the whole-process side of bench/cycle.py (see bench/whole.py).

    python bench/reader_cycle.py DB URLS_FILE WORKERS

Opens (or creates) the reader database DB; if the file did not exist, adds every feed of URLS_FILE (one URL per
line, as reader needs on first use); updates every feed once (`update_feeds_iter(scheduled=False,
workers=WORKERS)`, the work of `update_feeds`, with counts); prints one JSON line of counts and stage times.
Imports nothing but reader and the standard library, so its start-up and memory are reader's own.
"""

import json
import sys
import time
from pathlib import Path

started = time.perf_counter()
from reader import make_reader  # noqa: E402 (timed)

imported = time.perf_counter()


def main() -> None:
    db, urls_file, workers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    new = not Path(db).exists()
    reader = make_reader(db)
    opened = time.perf_counter()
    if new:
        for url in urls_file.read_text().split():
            reader.add_feed(url, exist_ok=True)
    added = time.perf_counter()
    counts = {"feeds": 0, "new_items": 0, "not_modified": 0, "errors": 0}
    first_error = None
    # scheduled=False: reader otherwise skips every feed updated less than its update interval ago.
    for update in reader.update_feeds_iter(scheduled=False, workers=workers):
        counts["feeds"] += 1
        if update.value is None:
            counts["not_modified"] += 1
        elif isinstance(update.value, Exception):
            counts["errors"] += 1
            first_error = first_error or repr(update.value)
        else:
            counts["new_items"] += update.value.new
    updated = time.perf_counter()
    reader.close()
    times = {"import_s": imported - started, "open_s": opened - imported, "add_s": added - opened}
    times |= {"update_s": updated - added, "close_s": time.perf_counter() - updated}
    print(json.dumps({**counts, "first_error": first_error, "new_db": new, **times}))


if __name__ == "__main__":
    main()
