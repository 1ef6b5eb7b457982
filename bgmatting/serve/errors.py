"""The one exception the HTTP layer turns into a ``{"detail": "..."}`` answer with a 4xx/5xx status."""


class ApiError(Exception):
    """A request the server refuses, with the HTTP status to answer and a one-line reason naming the problem.

    Args:
        status: HTTP status code (413 too large, 415 not an image, 422 unusable input, 403 path escape, ...).
        detail: one line naming the field/file and what is wrong with it.
        retry_after: seconds sent as ``Retry-After`` with a 503 (busy: retry later).
    Example:
        >>> raise ApiError(415, "field 'src': not an image (accepted: PNG, JPEG, BMP, TIFF, WebP)")
    """

    def __init__(self, status: int, detail: str, retry_after: int = 2):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after

    def headers(self) -> dict:
        """HTTP headers of the answer: ``Retry-After`` for a 503."""
        return {"Retry-After": str(self.retry_after)} if self.status == 503 else {}
