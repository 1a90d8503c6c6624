"""The Qt binding must not drop references to None/True: a console running for minutes would abort.

PySide6 6.12.0 on Python 3.11 did ("Fatal Python error: none_dealloc"); pyproject.toml
excludes it. This fails if a future upgrade brings the bug back.
"""
import sys

import pytest

if sys.version_info >= (3, 12):
    pytest.skip("None and True are immortal from Python 3.12", allow_module_level=True)


def test_void_calls_and_unset_data_keep_none_alive(qapp):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QStandardItem
    from PySide6.QtWidgets import QPushButton

    button, item = QPushButton(), QStandardItem()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(1000):
        button.setEnabled(True)
        item.data(Qt.UserRole + 99)
    assert sys.getrefcount(None) >= none_before - 10
    assert sys.getrefcount(True) >= true_before - 10
