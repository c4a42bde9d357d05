"""Model architectures behind one small interface (see ``base.py``)."""
