"""Checks of a file's container before any reader opens it: empty, truncated, half missing.

What a user meets with an incomplete copy (a transfer cut short, a file still being written, a
``.rpl`` copied without its ``.raw``) should be one line naming the file and what is wrong with it,
in the words of the file, not a reader's internal error. Each check reads a few bytes and raises
:class:`~napari_sigma.errors.SpectrumImageError`; what it cannot tell is left to the reader.

- HDF5 containers (``.emd``, ``.hspy``, ``.h5oina``): the superblock records the address of the
  end of the file (HDF5 specification, "Format Signature and Superblock", versions 0-3); a file
  shorter than that is truncated. HDF5's own refusal said it with the library's internals
  ("truncated file: eof = 40464, sblock->base_addr = 0, stored_eof = 2023240").
- Lispix ripple (``.rpl`` + ``.raw``): the ``.rpl`` is a text header whose ``width``, ``height``,
  ``depth``, ``data-length`` and ``offset`` give the size of the ``.raw`` beside it; a missing or
  short ``.raw`` is named (rosettasciio said 'RAW file "" does not exists', or "mmap length is
  greater than file size").
"""

from __future__ import annotations

from pathlib import Path

from napari_sigma.errors import SpectrumImageError

HDF5_SUFFIXES = (".emd", ".hspy", ".h5oina")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_UNDEFINED = 0xFF  # an undefined address: every byte 0xff


def check_not_empty(path: Path) -> None:
    """Refuse a file of 0 bytes (an interrupted copy) with that fact."""
    if path.stat().st_size == 0:
        raise SpectrumImageError(path, "the file is empty (0 bytes): an interrupted copy?")


def with_article(noun: str) -> str:
    """``noun`` after "a" or "an" (by its first letter: "an EDAX ...", "a HyperSpy ...")."""
    return f"{'an' if noun[:1].upper() in 'AEIOU' else 'a'} {noun}"


def hdf5_end_of_file(path: Path, description: str = "HDF5") -> int | None:
    """The size the HDF5 superblock of ``path`` records (its end-of-file address), or
    None where it cannot be read here (an unknown superblock version, an undefined address).

    Raises
    ------
    SpectrumImageError
        No HDF5 signature where the specification puts it (0, 512, 1024, 2048 ... bytes): the
        message names the format (``description``) the file's extension promised.
    """
    size = path.stat().st_size
    with path.open("rb") as file:
        where = 0
        while where + 8 <= size:
            file.seek(where)
            if file.read(8) == _HDF5_SIGNATURE:
                return _end_of_file(file.read(40))
            where = 512 if where == 0 else 2 * where
    raise SpectrumImageError(
        path,
        f"not an HDF5 file (no HDF5 signature): not {with_article(description)} file, or corrupt",
    )


def _end_of_file(block: bytes) -> int | None:
    """The end-of-file address of a superblock (``block``: its bytes after the signature).

    The address counts from the start of the file, a user block before the superblock included
    (HDF5 refuses a file shorter than it: "truncated file: ... stored_eof")."""
    if not block:
        return None
    version = block[0]
    if version in (0, 1):
        if len(block) < 7:
            return None
        width = block[5]  # size of offsets
        first = 16 if version == 0 else 20  # after the signature: the base address
    elif version in (2, 3):
        width, first = block[1], 4
    else:
        return None
    if width not in (2, 4, 8) or len(block) < first + 3 * width:
        return None
    # base address, free-space info (0-1) or superblock extension (2-3), end of file
    end = block[first + 2 * width : first + 3 * width]
    if end == bytes([_UNDEFINED]) * width:
        return None
    return int.from_bytes(end, "little")


def check_hdf5_size(path: Path, description: str = "HDF5") -> None:
    """Refuse an HDF5 container shorter than its superblock says it is, or without a superblock
    (``description``: the format, for the message)."""
    expected = hdf5_end_of_file(path, description)
    size = path.stat().st_size
    if expected is not None and size < expected:
        raise SpectrumImageError(
            path, f"the file is truncated: {size} bytes of the {expected} its header announces"
        )


def _ripple_header(path: Path) -> dict[str, str]:
    """The ``key<TAB>value`` lines of a ``.rpl`` header (keys lower case; its first 64 kB)."""
    with path.open("rb") as file:
        text = file.read(65536).decode("latin-1")  # units may be "µm" in any encoding
    header = {}
    for line in text.splitlines():
        key, _, value = line.partition("\t")
        if value:
            header[key.strip().lower()] = value.strip()
    return header


def check_ripple_data(path: Path) -> None:
    """Refuse a ``.rpl`` whose ``.raw`` is missing, or shorter than its header describes."""
    raw = next(
        (path.with_suffix(s) for s in (".raw", ".RAW") if path.with_suffix(s).is_file()), None
    )
    if raw is None:
        raise SpectrumImageError(
            path,
            f"its data file {path.stem}.raw is missing (a .rpl is the header of the .raw "
            "beside it: copy both)",
        )
    header = _ripple_header(path)
    try:
        count = int(header["width"]) * int(header["height"]) * int(header.get("depth", 1))
        expected = int(header.get("offset", 0)) + count * int(header["data-length"])
    except (KeyError, ValueError):
        return  # not a header this check can read: the reader says what is wrong
    size = raw.stat().st_size
    if size < expected:
        raise SpectrumImageError(
            path,
            f"its data file {raw.name} is truncated: {size} bytes of the {expected} the header "
            "describes",
        )
