"""Where the tests find the repository and the shared data, wherever a test module sits."""

from pathlib import Path

#: The repository's root folder.
REPO = Path(__file__).resolve().parents[2]
#: The shared real data beside the repository (may be absent: tests that need it skip, or fail under CI).
SHARED_DATA = REPO.parent / "shared" / "data"
