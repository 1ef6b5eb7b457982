"""The one exception the HTTP layer turns into a ``{"detail": "..."}`` answer with a 4xx/5xx status."""


class ApiError(Exception):
    """A request the server refuses, with the HTTP status to answer and a one-line reason naming the problem.

    Args:
        status: HTTP status code (413 too large, 415 not an image, 422 unusable input, 403 path escape, ...).
        detail: one line naming the field/file and what is wrong with it.
    Example:
        >>> raise ApiError(415, "field 'src': not an image (accepted: PNG, JPEG, BMP, TIFF, WebP)")
    """

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail
