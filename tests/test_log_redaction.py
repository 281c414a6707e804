"""No secret in any log line: malformed requests carrying secrets, sent over a raw socket to a running
`serve` process, at INFO and at DEBUG; then every byte the process wrote is searched for them."""

import asyncio
import io
import logging
import signal
import uuid
import warnings

import pytest

from service.logs import JsonFormatter
from service.redaction import RedactSecrets, redact
from tests.test_deploy import start_service, wait_healthy


def secret(name):
    return f"{name}{uuid.uuid4().hex}"


def hostile_requests(secrets):
    """Raw requests a careless or hostile client sends, each carrying secrets where a parser chokes."""
    s = secrets
    return [
        # A control byte inside the Authorization header; a token in the query string.
        f"GET /v1/users?token={s[0]}&limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {s[1]}\x01x\r\n\r\n",
        # A Stripe signature with a stray CR, and a Content-Length that is not a number.
        (f"POST /v1/stripe/webhook HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,v1={s[2]}\r\r\n"
         "Content-Length: abc\r\n\r\n"),
        # A request line with a token in the query and junk after the version.
        f"GET /v1/users?access_token={s[3]} HTTP/1.1 junk\r\nHost: x\r\n\r\n",
        # A cookie with a stray control byte, and a header line with no colon.
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: session={s[4]}\x7f\r\nBearer {s[5]}\r\n\r\n",
        # A well-formed request with a real-looking token, but a body that is cut off.
        (f"POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {s[6]}\r\nContent-Type: application/json\r\n"
         f"Content-Length: 500\r\n\r\n{{\"email\": \"a@b.c\", \"password\": \"{s[7]}"),
        # Not HTTP at all.
        f"\x16\x03\x01 Authorization: Bearer {s[8]}\r\n\r\n",
    ]


async def send_raw(port, data: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data.encode("latin-1"))
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(4096), 1.0)
    except TimeoutError:
        pass
    writer.close()


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_malformed_requests_carrying_secrets_leave_no_secret_in_any_log_stream(
        migrated_database_url, redis_url, level):
    process, base = start_service(migrated_database_url, redis_url, LOG_LEVEL=level, BODY_READ_TIMEOUT="1")
    try:
        await wait_healthy(base, process)
        port = int(base.rsplit(":", 1)[1])
        secrets = [secret(f"s{i}-") for i in range(9)]
        for request in hostile_requests(secrets):
            await send_raw(port, request)
        await asyncio.sleep(1.5)  # the cut-off body times out
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(process.communicate, timeout=30)
    logged = out + err
    assert logged.strip(), "the service wrote nothing: the test would prove nothing"
    for value in secrets:
        assert value not in logged, f"{value} leaked: {logged[-3000:]}"
    assert "deploy-write" not in logged  # the service tokens themselves
    if level == "DEBUG":
        assert "[redacted]" in logged, logged[-3000:]  # aiohttp did log the bad requests, redacted


def test_warnings_and_tracebacks_are_redacted_too():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("py.warnings")
    logger.addHandler(handler)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("retrying with headers {'Authorization': 'Bearer w4rn1ng'}", RuntimeWarning)
        try:
            raise ValueError("GET /x?refresh_token=tr4ceback failed; Stripe-Signature: t=1,v1=abc")
        except ValueError:
            logging.getLogger("py.warnings").exception("failed")
    finally:
        logging.captureWarnings(False)
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "w4rn1ng" not in text and "tr4ceback" not in text and "v1=abc" not in text
    assert text.count("[redacted]") >= 3 and "ValueError" in text


def test_what_redaction_keeps():
    line = "GET /v1/users?limit=5&sort=-createdAt HTTP/1.1 from 127.0.0.1 Content-Length: 12"
    assert redact(line) == line
