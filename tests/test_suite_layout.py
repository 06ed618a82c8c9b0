"""The test suite's own layout: pytest imports each test file by its base name (the test folders
are not packages), so two test files of one name in two folders stop the whole run at collection
("import file mismatch"), which a run of one folder never shows."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_every_test_file_name_is_unique_across_folders():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
