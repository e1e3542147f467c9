"""The benchmark corpus: Debian package descriptions from ``apt-cache dumpavail``, labelled by Section.

Run ``apt-get update -o Acquire::Languages=en`` first (as root; the images' apt config says Languages "none", so
plain ``apt-get update`` fetches no long descriptions): ``apt-cache dumpavail`` gives each package's Section and
``Description-md5``, the Translation-en lists (read with ``apt-helper cat-file``) the long description with that
md5; without them the one-line short descriptions are used. Descriptions are lower-cased and split into word tokens
(punctuation apart), one package per line. Sections are taken without their archive area ("contrib/net" is "net").
"""

import glob
import re
import subprocess
from collections import Counter

TRANSLATIONS = "/var/lib/apt/lists/*_i18n_Translation-en*"

TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[^\sa-z0-9]")


def dumpavail():
    return subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout


def translations():
    """{Description-md5: long description} from the downloaded Translation-en lists."""
    long = {}
    for path in sorted(glob.glob(TRANSLATIONS)):
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", path], capture_output=True, text=True,
                              check=True).stdout
        for stanza in text.split("\n\n"):
            fields = _fields(stanza, "Description-en")
            if fields.get("Description-md5") and fields.get("Description-en"):
                long[fields["Description-md5"]] = fields["Description-en"]
    return long


def _fields(stanza, multiline):
    fields, current, text = {}, None, []
    for line in stanza.splitlines():
        if line.startswith((" ", "\t")):
            if current == multiline:
                part = line.strip()
                text.append("" if part == "." else part)
            continue
        current, _, value = line.partition(":")
        fields[current] = value.strip()
        if current == multiline:
            text = [value.strip()]
    if text:
        fields[multiline] = " ".join(t for t in text if t)
    return fields


def packages(text, long=None):
    """{package: (section, description)}: the first stanza of each package name; the long description when
    ``long`` (from translations()) has it."""
    long = long or {}
    found = {}
    for stanza in text.split("\n\n"):
        fields = _fields(stanza, "Description")
        package, section = fields.get("Package"), fields.get("Section")
        description = long.get(fields.get("Description-md5"), fields.get("Description"))
        if package and section and description and package not in found:
            found[package] = (section.rpartition("/")[2], description)
    return found


def tokens(text):
    return " ".join(TOKEN.findall(text.lower()))


def labelled(found, sections=15):
    """``[(section, tokenised description)]`` of the ``sections`` largest sections, in package-name order."""
    counts = Counter(section for section, _ in found.values())
    keep = {name for name, _ in counts.most_common(sections)}
    return [(section, tokens(description)) for _, (section, description) in sorted(found.items()) if section in keep]


def unlabelled(found):
    return [tokens(description) for _, (_, description) in sorted(found.items())]
