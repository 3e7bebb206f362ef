"""Password policy: long enough, and not a secret someone could guess (NIST SP 800-63B, 5.1.1.2).

Every new password (an account added, a password reset or changed) goes through :func:`check_password`. Spaces
are allowed anywhere, but only what lies between the first and the last other character counts: ten spaces, or a
weak password padded with spaces, is still refused. Refused:

- fewer than :data:`MIN_LENGTH` characters (or more than :data:`MAX_LENGTH`), or nothing but spaces;
- the user name, or any password containing it (in any case);
- too little variety: fewer than :data:`MIN_DISTINCT` different characters (``aaaaaaaaaa``), a short unit repeated
  (``pipipipipi``, ``abcabcabcabc``), or a straight run (``abcdefghij``, ``9876543210``);
- a common password: one of the 19,640 in ``biobank/data/common_passwords.txt`` (the list Django ships), also with
  digits or symbols added at either end (``Password2026!``), written with look-alike digits (``p@ssw0rd``), or
  split by symbols (``i-love-you``); the words that name this system (``biobank2026``) count as common too.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from itertools import pairwise

from biobank.domain.errors import invalid

MIN_LENGTH = 10
#: argon2 hashes any length, but a megabyte "password" is a denial of service, not a secret
MAX_LENGTH = 256
MIN_DISTINCT = 5
COMMON_LIST = "common_passwords.txt"
#: Words anyone would try first against this system (compared like the common passwords).
CONTEXT_WORDS = frozenset({"biobank", "biobanking", "autopsy", "rapidautopsy", "specimen", "specimens", "tissue"})

_LOOK_ALIKES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
                              "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
_ENDS = re.compile(r"^[^a-z]+|[^a-z]+$")
_NOT_LETTER = re.compile(r"[^a-z]+")
_REPEATED = re.compile(r"(.+?)\1+", re.DOTALL)
#: a candidate shorter than this is not looked up (a common password's stem, such as "abc", is no reason to refuse)
_SHORTEST_STEM = 4


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list, in lower case (read once)."""
    text = (files("biobank") / "data" / COMMON_LIST).read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("# "))


@lru_cache(maxsize=1)
def _guessable() -> frozenset[str]:
    return common_passwords() | CONTEXT_WORDS


def _stems(core: str) -> set[str]:
    """What a guesser's list would hold for ``core`` (lower case): itself, without digits and symbols at its ends,
    with look-alike characters read as letters, and its letters alone."""
    lower = core.lower()
    readable = lower.translate(_LOOK_ALIKES)
    candidates = {lower, _ENDS.sub("", lower), readable, _ENDS.sub("", readable), _NOT_LETTER.sub("", lower)}
    candidates.add(_NOT_LETTER.sub("", _ENDS.sub("", lower).translate(_LOOK_ALIKES)))
    return {c for c in candidates if len(c) >= _SHORTEST_STEM}


def _straight_run(text: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in pairwise(text)}
    return len(steps) == 1 and steps <= {1, -1}


def password_problems(password: str | None, *, username: str | None = None) -> list[str]:
    """Why ``password`` may not be used (empty: it may), each reason worded to follow "Password"."""
    if password is None or not password.strip():
        return ["is blank: every account needs a password"]
    core = password.strip()
    lower = core.lower()
    problems = []
    if len(core) < MIN_LENGTH:
        spaces = " (spaces at either end do not count)" if core != password else ""
        problems.append(f"must be at least {MIN_LENGTH} characters{spaces}")
    if len(password) > MAX_LENGTH:
        problems.append(f"must be at most {MAX_LENGTH} characters")
    name = (username or "").strip().lower()
    if name and (name in lower or name in lower.translate(_LOOK_ALIKES)):
        problems.append("must not contain the user name")
    repeated = _REPEATED.fullmatch(lower)
    if len(set(lower)) < MIN_DISTINCT:
        problems.append(f"needs at least {MIN_DISTINCT} different characters")
    elif repeated:
        problems.append(f"must not repeat a pattern ({repeated.group(1)!r} over and over)")
    elif _straight_run(lower):
        problems.append("must not be a run of consecutive characters")
    if _stems(core) & _guessable():
        problems.append("is too common: it is on the list of passwords guessers try first")
    return problems


def check_password(password: str | None, *, username: str | None = None) -> None:
    """Refuse ``password`` for the account ``username`` (a ValidationError naming every rule it breaks)."""
    problems = password_problems(password, username=username)
    if problems:
        raise invalid("password", None, "; ".join(problems))
