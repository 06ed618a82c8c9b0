"""A vendor file read into a spectrum image or a spectrum: the read functions and their routing
(:mod:`reading`), the reader's signals made into a spectrum image (:mod:`signals`, its axes in
:mod:`calibration`), a lazy cube decoded into a given array (:mod:`decoding`, HDF5 without HDF5
in :mod:`_hdf5_direct`, the destination's memory in :mod:`_memory`), rosettasciio's readers
(:mod:`_rsciio`) and this package's own (:mod:`h5oina`; :mod:`hspy_direct`: an eager ``.hspy``
read with h5py alone, the signals rosettasciio gives), Bruker event lists kept as events
(:mod:`events`), and the checks at the door (:mod:`validation`)."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "is_supported": "reading",
        "read_spectrum_image": "reading",
        "read_spectrum": "reading",
        "read_any": "reading",
        "SUPPORTED_EXTENSIONS": "reading",
        "validate_spectrum_image": "validation",
        "check_analysable": "validation",
        "DataWarning": "validation",
        "EventCube": "events",
        "event_cube_of": "events",
    },
)
