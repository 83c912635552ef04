#!/usr/bin/python3
"""bench/wc_counter.py INPUT OUTPUT - word count with collections.Counter: what a Python
user would write. Words are runs of non-whitespace bytes (bytes.split(): ASCII whitespace,
which is ember's space, tab, CR, LF plus VT and FF, neither of which the generated text
has); output "word<TAB>count" lines. bench/wordcount.sh checks ember's counts against these."""
import collections
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    counts = collections.Counter()
    rest = b""
    with open(src, "rb") as f:
        while True:
            chunk = f.read(64 << 20)
            if not chunk:
                break
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            rest = chunk[cut:]
            counts.update(chunk[:cut].split())
    counts.update(rest.split())
    with open(dst, "wb") as out:
        for word, n in counts.items():
            out.write(word + b"\t" + str(n).encode() + b"\n")


if __name__ == "__main__":
    main()
