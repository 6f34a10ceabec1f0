import pytest

from image_folders import write_folder


@pytest.fixture()
def folder(tmp_path):
    """A folder of 3 classes x 12 PNG images (:func:`image_folders.images`)."""
    pytest.importorskip("PIL.Image")
    return write_folder(tmp_path / "imgs")
