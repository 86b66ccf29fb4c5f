"""Reading multipart/form-data bodies with the standard library's MIME parser.

Starlette's own form parsing needs python-multipart, a dependency the
simulator would take for this one use.
"""

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP


def parse_multipart(body: bytes, content_type: str) -> dict[str, str]:
    """The text fields of a multipart/form-data body; file parts are skipped.

    Raises ValueError when the body is not multipart or a field is not UTF-8.
    """
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise ValueError("not a multipart body")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and part.get_filename() is None:
            payload = part.get_payload(decode=True)
            fields[name] = payload.decode() if isinstance(payload, bytes) else ""
    return fields
