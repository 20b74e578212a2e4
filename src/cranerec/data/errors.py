"""The data layer's error type."""


class DataError(ValueError):
    """Invalid input data; the message names the file, the row (where there is one) and the
    problem."""
