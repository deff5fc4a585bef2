"""Unpaired image data: folder datasets in the reference layout and the built-in synthetic benchmark."""
