"""Channel files and request bodies the tests write."""

import io

import numpy as np


def csv_bytes(*columns, fmt="%.8g"):
    """CSV of the columns side by side (1-D arrays as one column each, 2-D as theirs), one row a line."""
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack(columns), delimiter=",", fmt=fmt)
    return buffer.getvalue().encode()
