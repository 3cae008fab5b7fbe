"""Medical volumes: NIfTI and DICOM in, 3-D masks out, measured in millimetres.

Needs the ``medical`` extra (nibabel, pydicom, SimpleITK): ``pip install 'segflow[medical]'``.
The packages are imported only when a volume is read or written.
"""

from segflow.volume.display import CT_WINDOWS, apply_window, window_level
from segflow.volume.io import (
    Volume,
    check_aligned,
    is_volume_path,
    list_volumes,
    read_dicom_series,
    read_nifti,
    read_volume,
    volume_stem,
    write_mask_volume,
    write_volume,
)

__all__ = ["CT_WINDOWS", "Volume", "apply_window", "check_aligned", "is_volume_path",
           "list_volumes", "read_dicom_series", "read_nifti", "read_volume", "volume_stem",
           "window_level", "write_mask_volume", "write_volume"]
