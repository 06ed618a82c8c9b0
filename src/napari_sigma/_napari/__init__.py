"""The napari layer of napari-sigma: reader, writer, sample data and dock widgets (Qt via qtpy)."""
