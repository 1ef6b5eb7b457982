"""ASGI middleware in front of the app: the optional access token, and the guard on request bodies.

Both answer before FastAPI parses anything: a request without the token never has its body read, and a body
that is too large or stalls is cut off while it streams.
"""
import asyncio
import hmac

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from bgmatting.serve.errors import ApiError
from bgmatting.serve.settings import ServeSettings

TOKEN_COOKIE = "bgmatting_token"


class TokenAuth:
    """Every HTTP request must carry the server's token, else 401.

    Accepted as ``Authorization: Bearer <token>``, a ``token=<token>`` query parameter, or the
    ``bgmatting_token`` cookie. An answer to a request authorised by the query parameter sets that cookie
    (HttpOnly, SameSite=Strict), so opening ``/?token=<token>`` once authorises the page and everything it loads.

    Args:
        app: the ASGI app; token: the secret (compared in constant time).
    """

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    def _matches(self, offered) -> bool:
        return bool(offered) and hmac.compare_digest(offered.encode(), self.token)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        connection = HTTPConnection(scope)
        bearer = connection.headers.get("authorization", "")
        by_header = bearer[:7].lower() == "bearer " and self._matches(bearer[7:])
        by_cookie = self._matches(connection.cookies.get(TOKEN_COOKIE))
        by_query = self._matches(connection.query_params.get("token"))
        if not (by_header or by_cookie or by_query):
            refusal = JSONResponse({"detail": "missing or wrong access token: send 'Authorization: Bearer <token>', "
                                              "or open the page once as /?token=<token>"},
                                   status_code=401, headers={"WWW-Authenticate": "Bearer"})
            return await refusal(scope, receive, send)
        if not by_query or by_cookie:
            return await self.app(scope, receive, send)
        cookie = f"{TOKEN_COOKIE}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict".encode()

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), (b"set-cookie", cookie)])
            await send(message)
        await self.app(scope, receive, send_with_cookie)


class BodyGuard:
    """Cut off request bodies that are too large or that stall.

    413 as soon as a body exceeds ``settings.request_body_limit(path)`` (from its Content-Length, or while it
    streams, before the multipart parser buffers it); 408 and the connection closed when no byte of a started
    body arrives for ``settings.upload_idle_timeout`` seconds, so a stalled upload holds nothing for long.

    The body is cut off by an ApiError raised in ``receive``; whatever answer the app then makes of that
    (FastAPI: a 400 "error parsing the body") is replaced by the refusal.
    """

    def __init__(self, app, settings: ServeSettings):
        self.app, self.settings = app, settings

    @staticmethod
    def _answer(error: ApiError) -> JSONResponse:
        headers = {"Connection": "close"} if error.status == 408 else None
        return JSONResponse({"detail": error.detail}, status_code=error.status, headers=headers)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, idle = self.settings.request_body_limit(scope["path"]), self.settings.upload_idle_timeout
        too_large = ApiError(413, f"request body is larger than {limit / 1e6:g} MB")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._answer(too_large)(scope, receive, send)
        state = dict(received=0, complete=False, refusal=None, answered=False)

        async def guarded_receive():
            if state["complete"]:  # later calls wait for a disconnect: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), idle)
            except asyncio.TimeoutError:
                state["refusal"] = ApiError(408, f"request body stalled: nothing arrived for {idle:g} s")
                raise state["refusal"] from None
            state["received"] += len(message.get("body", b""))
            state["complete"] = not message.get("more_body", False)
            if state["received"] > limit:
                state["refusal"] = too_large
                raise too_large
            return message

        async def guarded_send(message):
            if state["refusal"] is None:
                return await send(message)
            if message["type"] == "http.response.start" and not state["answered"]:
                state["answered"] = True
                await self._answer(state["refusal"])(scope, receive, send)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except ApiError as error:
            if error is not state["refusal"]:
                raise
            if not state["answered"]:
                await self._answer(error)(scope, receive, send)
