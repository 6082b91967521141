"""Write the entries of the test lock file that the runtime lock file lacks.

Used by the Dockerfile's `test` stage: the runtime venv already holds everything
of requirements/lock.txt, and requirements/test-lock.txt is resolved with
lock.txt as a constraint, so the difference (moto's server, pytest, ...) can be
installed on top with `--no-deps --require-hashes`, hashes kept. Each NAME is
written too although the runtime has it: the runtime image keeps part of it
(docker/slim-venv.sh; botocore's models of S3 and STS only, where moto's server
also serves IAM), and the test image needs it whole.

    python test-extras.py LOCK TEST_LOCK OUT [NAME ...]
"""

import re
import sys

ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)(\[[^\]]*\])?==[^\n]*(?:\n[ \t]+[^\n]*)*", re.M)


def entries(path: str) -> dict[str, str]:
    text = open(path, encoding="utf-8").read()
    out = {}
    for m in ENTRY.finditer(text):
        # keep the requirement and its --hash lines, drop "# via" comments
        lines = [ln for ln in m.group(0).splitlines() if not ln.strip().startswith("#")]
        out[re.sub(r"[-_.]+", "-", m.group("name")).lower()] = "\n".join(lines)
    return out


def main(lock: str, test_lock: str, out: str, *whole: str) -> None:
    runtime = entries(lock)
    extra = {k: v for k, v in entries(test_lock).items() if k not in runtime or k in whole}
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(extra[k] for k in sorted(extra)) + "\n")
    print(f"{len(extra)} test-only or whole packages: {', '.join(sorted(extra))}")


if __name__ == "__main__":
    main(*sys.argv[1:])
