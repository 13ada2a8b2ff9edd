# -*- coding: utf-8 -*-
"""Unit tests import the collection from the .collections symlink made by `make setup`."""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, ".collections"))
