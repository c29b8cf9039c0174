"""The text data sets the course trains on, found offline or downloaded once.

    from coursedata import load_text
    text = load_text("names.txt")

Where a file is looked for, in order: the folder given, or $COURSE_DATA; a
folder shared/data beside the current folder or one of its parents (so
../shared/data beside the checkout, for the book, bench/ and a notebook run from
assignments/aNN/); the download cache (~/.cache/transformers-course). If
none has it, it is downloaded from its original address into the cache. Every
copy is checked against its sha256 before it is used, so a truncated download
or an edited file is refused, never silently trained on.

Assignment notebooks carry a copy of everything from SOURCES down in their setup
cell (a notebook opened in Colab has no course package), between the lines
`# --- coursedata.py ---` and `# --- end of coursedata.py ---`;
tests/test_data.py checks that every copy is this one.
"""
import hashlib
import os
import urllib.request
from pathlib import Path

SOURCES = {
    "tinyshakespeare.txt": (
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    "names.txt": (
        "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
        "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"),
}


def load_text(name, data_dir=None):
    """The text of one of the course's data files (see SOURCES), as a str."""
    if name not in SOURCES:
        raise ValueError(f"unknown data file {name!r}: the course has {', '.join(sorted(SOURCES))}")
    url, sha256 = SOURCES[name]
    here = Path.cwd()
    folders = [data_dir, os.environ.get("COURSE_DATA"), *(p / "shared" / "data" for p in [here, *here.parents][:5])]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "transformers-course"
    for folder in [*folders, cache]:
        path = Path(folder) / name if folder else None
        if path is not None and path.is_file():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise ValueError(f"{path} is not the course's {name} (its sha256 differs): delete it, or set "
                                 "COURSE_DATA to a folder with the right copy")
            return data.decode("utf-8")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except OSError as err:
        raise FileNotFoundError(f"{name} is not on this machine and could not be downloaded from {url} ({err}): "
                                f"put a copy in a folder and set COURSE_DATA to it") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"the download of {name} from {url} is not the expected file (sha256 differs)")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / name).write_bytes(data)
    return data.decode("utf-8")
